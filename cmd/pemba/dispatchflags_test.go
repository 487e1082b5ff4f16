package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine/token"
)

func TestDispatchFlags(t *testing.T) {
	fp := token.FingerprintOf("postgres", "test")
	keys := []server.Key{{Name: "cluster", Secret: "s3cret"}}
	tests := []struct {
		name    string
		flags   dispatchFlags
		listen  string
		store   string
		tls     bool
		wantErr string // "" : a router (or none, without peers)
		wantNil bool
	}{
		{"no peers: no cluster", dispatchFlags{}, "127.0.0.1:1", "pebble", false, "", true},
		{"a node of three", dispatchFlags{peers: "127.0.0.1:1, 127.0.0.1:2,127.0.0.1:3", timeout: time.Second}, "127.0.0.1:2", "postgres", false, "", false},
		{"self named explicitly", dispatchFlags{peers: "10.0.0.1:1,10.0.0.2:1", self: "10.0.0.2:1"}, "0.0.0.0:1", "postgres", false, "", false},
		{"with TLS", dispatchFlags{peers: "a:1,b:1"}, "a:1", "postgres", true, "", false},
		{"not a shared datastore", dispatchFlags{peers: "a:1,b:1"}, "a:1", "pebble", false, "-datastore postgres", true},
		{"this node missing", dispatchFlags{peers: "a:1,b:1"}, "c:1", "postgres", false, "-dispatch-self", true},
		{"unreadable CA", dispatchFlags{peers: "a:1,b:1", caFile: "/nonexistent/ca.pem"}, "a:1", "postgres", true, "dispatch CA", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.flags.router(tc.listen, tc.store, fp, keys, tc.tls, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (r == nil) != tc.wantNil {
				t.Fatalf("router = %v, want nil %v", r, tc.wantNil)
			}
			if r != nil {
				r.Close()
			}
		})
	}
}

func TestServeRefusesDispatchWithoutSharedDatastore(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"serve", "-listen", "127.0.0.1:0", "-datastore", "memory", "-dispatch-peers", "127.0.0.1:1,127.0.0.1:2"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "-datastore postgres") {
		t.Errorf("stderr %q does not say which datastore a cluster needs", stderr.String())
	}
}
