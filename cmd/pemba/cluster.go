package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pemba-authz/pemba/api/client"
	"github.com/pemba-authz/pemba/api/cluster"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
)

// dispatchFlags configure the cluster role of `pemba serve`.
type dispatchFlags struct {
	peers   string        // comma-separated host:port of every node, this one included
	self    string        // this node's entry in peers ("" : -listen)
	timeout time.Duration // one dispatch
	caFile  string        // CA of the peers' TLS certificates ("" : system roots)
	// dialOptions are added to the peer connections (tracing's, which
	// send the trace context to the peers).
	dialOptions []grpc.DialOption
}

// router builds the cluster router of a node serving on listen with the
// given keys and TLS setting; nil when no peers are configured.
func (d dispatchFlags) router(listen string, storeKind string, fp engine.Fingerprint, keys []server.Key, useTLS bool, log *slog.Logger) (*cluster.Router, error) {
	if d.peers == "" {
		return nil, nil
	}
	if storeKind != "postgres" {
		return nil, fmt.Errorf("-dispatch-peers needs a datastore the nodes share (-datastore postgres), not %s", storeKind)
	}
	var peers []string
	for _, p := range strings.Split(d.peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			peers = append(peers, p)
		}
	}
	self := d.self
	if self == "" {
		self = listen
	}
	var opts []grpc.DialOption
	if useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if d.caFile != "" {
			pem, err := os.ReadFile(d.caFile)
			if err != nil {
				return nil, fmt.Errorf("dispatch CA: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("dispatch CA %s: no PEM certificates", d.caFile)
			}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if len(keys) > 0 {
		// Nodes share one keys file; a node presents its first key.
		opts = append(opts, grpc.WithPerRPCCredentials(client.KeyCredentials(keys[0].Secret, useTLS)))
	}
	opts = append(opts, d.dialOptions...)
	r, err := cluster.New(cluster.Config{
		Self: self, Peers: peers, Fingerprint: fp, DialOptions: opts, Timeout: d.timeout, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w (set -dispatch-self to this node's entry)", err)
	}
	return r, nil
}
