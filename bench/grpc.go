package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pemba-authz/pemba/api/client"
	"github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// GRPCOptions configure a gRPC target.
type GRPCOptions struct {
	// Addr is the server's host:port, or several separated by commas
	// (the nodes of a cluster): connections are spread over them in turn.
	Addr string
	// Key is a preshared key sent as "authorization: Bearer <key>"
	// (empty: none).
	Key string
	// Consistency is asked for by every read.
	Consistency Consistency
	// TLS, when set, secures the connections (nil: plaintext).
	TLS *tls.Config
	// DialOptions replace the transport options TLS chooses.
	DialOptions []grpc.DialOption
	// Conns is how many connections the workers' calls are spread over,
	// round robin (0: DefaultGRPCConns). One HTTP/2 connection serializes
	// every frame through one reader and one writer goroutine on each side.
	Conns int
}

// DefaultGRPCConns is how many connections a GRPC target opens by default.
const DefaultGRPCConns = 4

// GRPC is a Target that calls a Pemba server over gRPC. It uses the
// generated stubs directly; the server's cache counters are not visible
// through the API, so Stats reports the cache as unknown (disabled).
type GRPC struct {
	conns  []*grpc.ClientConn
	pool   []pembav1.PermissionsServiceClient // one per conn
	next   atomic.Uint32
	perms  pembav1.PermissionsServiceClient // the first connection's
	schema pembav1.SchemaServiceClient
	key    string
	c      *pembav1.Consistency
}

// importBatch is the most relationships one ImportRelationships message
// may carry.
const importBatch = 1000

// NewGRPC connects to a server (lazily: the first call dials).
func NewGRPC(opts GRPCOptions) (*GRPC, error) {
	if opts.Addr == "" {
		return nil, fmt.Errorf("%w: the grpc mode needs a server address", ErrUsage)
	}
	dial := opts.DialOptions
	if dial == nil {
		dial = transport(opts)
	}
	addrs := strings.Split(opts.Addr, ",")
	n := opts.Conns
	if n <= 0 {
		n = DefaultGRPCConns
	}
	n = max(n, len(addrs)) // at least one connection per node
	conns := make([]*grpc.ClientConn, 0, n)
	pool := make([]pembav1.PermissionsServiceClient, 0, n)
	for i := range n {
		addr := strings.TrimSpace(addrs[i%len(addrs)])
		conn, err := grpc.NewClient(addr, dial...)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("bench: connect to %s: %w", addr, err)
		}
		conns = append(conns, conn)
		pool = append(pool, pembav1.NewPermissionsServiceClient(conn))
	}
	c := &pembav1.Consistency{Requirement: &pembav1.Consistency_MinimizeLatency{MinimizeLatency: true}}
	if opts.Consistency == FullyConsistent {
		c = &pembav1.Consistency{Requirement: &pembav1.Consistency_FullyConsistent{FullyConsistent: true}}
	}
	return &GRPC{
		conns: conns, pool: pool, perms: pool[0], schema: pembav1.NewSchemaServiceClient(conns[0]),
		key: opts.Key, c: c,
	}, nil
}

func (t *GRPC) auth(ctx context.Context) context.Context {
	if t.key == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t.key)
}

// Load writes the schema and streams the relationships in batches.
func (t *GRPC) Load(ctx context.Context, schema string, rels iter.Seq2[tuple.Relationship, error]) (int, error) {
	ctx = t.auth(ctx)
	if _, err := t.schema.WriteSchema(ctx, &pembav1.WriteSchemaRequest{Schema: schema}); err != nil {
		return 0, fmt.Errorf("bench: write schema: %w", err)
	}
	stream, err := t.perms.ImportRelationships(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: import: %w", err)
	}
	batch := make([]*pembav1.Relationship, 0, importBatch)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&pembav1.ImportRelationshipsRequest{Relationships: batch})
		batch = make([]*pembav1.Relationship, 0, importBatch)
		return err
	}
	for r, err := range rels {
		if err != nil {
			return 0, errors.Join(fmt.Errorf("bench: import source: %w", err), stream.CloseSend())
		}
		pr, err := relationshipToProto(r)
		if err != nil {
			return 0, errors.Join(err, stream.CloseSend())
		}
		batch = append(batch, pr)
		if len(batch) == importBatch {
			if err := send(); err != nil {
				break // the server's error comes with CloseAndRecv
			}
		}
	}
	if err := send(); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("bench: import: %w", err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, fmt.Errorf("bench: import: %w", err)
	}
	return int(resp.GetNumLoaded()), nil
}

// Do sends req over gRPC, reading every result of a lookup stream.
func (t *GRPC) Do(ctx context.Context, req *workload.Request) (Outcome, error) {
	ctx = t.auth(ctx)
	perms := t.pick()
	var reqCtx *structpb.Struct
	if req.Context != nil {
		var err error
		if reqCtx, err = structpb.NewStruct(req.Context); err != nil {
			return Outcome{}, fmt.Errorf("%w: caveat context: %w", ErrUsage, err)
		}
	}
	switch req.Op {
	case workload.OpCheck:
		resp, err := perms.CheckPermission(ctx, &pembav1.CheckPermissionRequest{
			Consistency: t.c, Resource: client.Object(req.Resource), Permission: req.Permission,
			Subject: client.Subject(req.Subject), Context: reqCtx,
		})
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Allowed: resp.GetPermissionship() == pembav1.Permissionship_PERMISSIONSHIP_HAS_PERMISSION}, nil
	case workload.OpLookupResources:
		return t.lookupResources(ctx, req, reqCtx)
	case workload.OpLookupSubjects:
		stream, err := perms.LookupSubjects(ctx, &pembav1.LookupSubjectsRequest{
			Consistency: t.c, Resource: client.Object(req.Resource), Permission: req.Permission,
			SubjectObjectType: req.SubjectType, Context: reqCtx,
		})
		if err != nil {
			return Outcome{}, err
		}
		return drainStream(stream)
	case workload.OpWrite:
		w := &pembav1.WriteRelationshipsRequest{}
		for _, u := range req.Updates {
			pr, err := relationshipToProto(u.Relationship)
			if err != nil {
				return Outcome{}, err
			}
			op := pembav1.RelationshipUpdate_OPERATION_TOUCH
			if u.Delete {
				op = pembav1.RelationshipUpdate_OPERATION_DELETE
			}
			w.Updates = append(w.Updates, &pembav1.RelationshipUpdate{Operation: op, Relationship: pr})
		}
		_, err := perms.WriteRelationships(ctx, w)
		return Outcome{}, err
	}
	return Outcome{}, fmt.Errorf("%w: operation %s", ErrUsage, req.Op)
}

// lookupLimit is the server's largest page of LookupResources results.
const lookupLimit = 10_000

// lookupResources pages through every result with the cursors the server
// returns, as a client would.
func (t *GRPC) lookupResources(ctx context.Context, req *workload.Request, reqCtx *structpb.Struct) (Outcome, error) {
	total := 0
	var cursor *pembav1.Cursor
	for {
		stream, err := t.perms.LookupResources(ctx, &pembav1.LookupResourcesRequest{
			Consistency: t.c, ResourceObjectType: req.ResourceType, Permission: req.Permission,
			Subject: client.Subject(req.Subject), Context: reqCtx,
			OptionalLimit: lookupLimit, OptionalCursor: cursor,
		})
		if err != nil {
			return Outcome{Results: total}, err
		}
		n := 0
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return Outcome{Results: total + n}, err
			}
			n++
			cursor = resp.GetAfterResultCursor()
		}
		total += n
		if n < lookupLimit || cursor == nil {
			return Outcome{Results: total}, nil
		}
	}
}

// drainStream reads a server stream to its end, counting the messages.
func drainStream[T any](s grpc.ServerStreamingClient[T]) (Outcome, error) {
	n := 0
	for {
		_, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return Outcome{Results: n}, nil
		}
		if err != nil {
			return Outcome{Results: n}, err
		}
		n++
	}
}

// Stats reports nothing: the API does not expose the server's counters.
func (t *GRPC) Stats() TargetStats { return TargetStats{} }

// Close closes the connection.
func (t *GRPC) Close() error {
	var errs []error
	for _, c := range t.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// pick returns the next connection's client, round robin.
func (t *GRPC) pick() pembav1.PermissionsServiceClient {
	return t.pool[int(t.next.Add(1))%len(t.pool)]
}

// relationshipToProto converts r for a request; a caveat context protobuf
// cannot hold is the workload's fault, hence a usage error.
func relationshipToProto(r tuple.Relationship) (*pembav1.Relationship, error) {
	pr, err := client.Relationship(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return pr, nil
}
