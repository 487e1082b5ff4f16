package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

func newRunServer(t *testing.T) (*Server, *engine.Engine) {
	t.Helper()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	eng, err := engine.Open(t.Context(), st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	srv, err := New(eng, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return srv, eng
}

// TestRun: Run reports both addresses, serves metrics, probes and pprof on
// the second, and returns nil once its context ends.
func TestRun(t *testing.T) {
	srv, _ := newRunServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- srv.Run(ctx, RunConfig{
			Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Gatherer: NewRegistry(), Pprof: true,
			Listening: func(g, m net.Addr) { addrs <- [2]net.Addr{g, m} },
		})
	}()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("Run ended before listening: %v", err)
	}
	if a[0] == nil || a[1] == nil {
		t.Fatalf("Listening(%v, %v): want both addresses", a[0], a[1])
	}
	for path, want := range map[string]string{
		"/metrics":      "go_goroutines",
		"/healthz":      "",
		"/readyz":       "",
		"/debug/pprof/": "goroutine",
	} {
		resp, err := http.Get("http://" + a[1].String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, body without %q", path, resp.StatusCode, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	srv, _ := newRunServer(t)
	if err := srv.Run(t.Context(), RunConfig{Listen: "127.0.0.1:0", Pprof: true}); err == nil {
		t.Error("Run with pprof and no metrics address succeeded")
	}
	if err := srv.Run(t.Context(), RunConfig{Listen: "no-such-host-name.invalid:1"}); err == nil {
		t.Error("Run on an address it cannot listen on succeeded")
	}
}

func TestReadKeysFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys, err := ReadKeysFile(write("keys", "crm a-long-random-secret-value\n"), nil)
	if err != nil || len(keys) != 1 || keys[0].Name != "crm" {
		t.Errorf("ReadKeysFile = %v, %v; want the crm key", keys, err)
	}
	if _, err := ReadKeysFile(write("empty", "\n"), nil); err == nil {
		t.Error("a file without keys was accepted")
	}
	if _, err := ReadKeysFile(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("a missing file was accepted")
	}
}
