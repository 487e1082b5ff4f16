// Package client is the Go client of Pemba's gRPC API: one connection with
// preshared-key authentication, the generated service clients, and a few
// helpers that speak package tuple's values (doc:1#viewer@user:anne) so
// that callers need not build protobuf messages by hand.
//
//	c, err := client.New("pemba.internal:50051", client.Options{Key: key, TLS: &tls.Config{}})
//	...
//	r, err := tuple.Parse("doc:readme#viewer@user:anne")
//	...
//	zk, err := c.Write(ctx, client.Touch(r))
//	...
//	resp, err := c.Check(ctx, client.AtLeastAsFresh(zk), "doc:readme", "view", "user:anne", nil)
//	if resp.GetPermissionship() == pembav1.Permissionship_PERMISSIONSHIP_HAS_PERMISSION { ... }
//
// Calls that fail with UNAVAILABLE are retried with backoff
// (Options.Retry: reads, and writes the server says were not applied;
// see Retry), calls an overloaded server shed are retried after the delay
// its RetryInfo asks for, and with
// Options.ReadYourWrites the client sends the zookie of its newest write
// on reads that name no consistency.
//
// Everything the helpers do not cover is one call away on the generated
// clients: c.Permissions, c.Schema, c.Watch.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// Options configure a Client.
type Options struct {
	// Key is the preshared key, sent as "authorization: Bearer <Key>".
	// Empty sends none (a server with authentication off).
	Key string
	// TLS secures the connection; nil with Insecure set means plaintext.
	TLS *tls.Config
	// Insecure allows plaintext. A key over plaintext can be read by
	// anyone on the path, so it must be asked for explicitly.
	Insecure bool
	// Retry configures retries on UNAVAILABLE (on by default for reads;
	// see Retry).
	Retry Retry
	// ReadYourWrites makes the client remember the zookie of its newest
	// write and send it as at_least_as_fresh on every later read that
	// names no consistency (a nil Consistency). Reads that name one are
	// sent as they are.
	ReadYourWrites bool
	// DialOptions are appended to the client's.
	DialOptions []grpc.DialOption
}

// ErrNoTransport: neither TLS nor Insecure was chosen.
var ErrNoTransport = errors.New("client: set Options.TLS, or Options.Insecure for plaintext")

// Client is a connection to a Pemba server. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// Permissions, Schema, Watch and Backup are the generated clients.
	Permissions pb.PermissionsServiceClient
	Schema      pb.SchemaServiceClient
	Watch       pb.WatchServiceClient
	Backup      pb.BackupServiceClient

	zk *zookies // nil unless Options.ReadYourWrites
}

// New connects lazily to target (host:port, or any gRPC target string).
func New(target string, opts Options) (*Client, error) {
	var dial []grpc.DialOption
	switch {
	case opts.TLS != nil:
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(opts.TLS)))
	case opts.Insecure:
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	default:
		return nil, ErrNoTransport
	}
	if opts.Key != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{key: opts.Key, secure: opts.TLS != nil}))
	}
	var zk *zookies
	// The retry interceptor is outermost, so that every try sees the
	// newest zookie.
	unary := []grpc.UnaryClientInterceptor{opts.Retry.interceptor()}
	stream := []grpc.StreamClientInterceptor{opts.Retry.streamInterceptor()}
	if opts.ReadYourWrites {
		zk = &zookies{}
		unary = append(unary, zk.unary())
		stream = append(stream, zk.stream())
	}
	dial = append(dial, grpc.WithChainStreamInterceptor(stream...))
	dial = append(dial, grpc.WithChainUnaryInterceptor(unary...))
	conn, err := grpc.NewClient(target, append(dial, opts.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{
		conn:        conn,
		Permissions: pb.NewPermissionsServiceClient(conn),
		Schema:      pb.NewSchemaServiceClient(conn),
		Watch:       pb.NewWatchServiceClient(conn),
		Backup:      pb.NewBackupServiceClient(conn),
		zk:          zk,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// bearer sends the preshared key with every call.
type bearer struct {
	key    string
	secure bool
}

// GetRequestMetadata adds the authorization header.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

// RequireTransportSecurity is false only when plaintext was chosen.
func (b bearer) RequireTransportSecurity() bool { return b.secure }
