package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultStopGrace is how long Run waits, once stopping, for calls in
// flight (open Watch streams never finish by themselves) before cutting
// them.
const DefaultStopGrace = 10 * time.Second

// ReadKeysFile reads preshared keys in ParseKeys' format from path. A
// file without keys is an error (it would silently turn authentication
// off); a file other users can read is served but warned about on log.
func ReadKeysFile(path string, log *slog.Logger) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 && log != nil {
		log.Warn("the keys file is readable by other users; chmod 600 it", "file", path, "mode", fi.Mode().Perm().String())
	}
	keys, err := ParseKeys(f)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no keys", path)
	}
	return keys, nil
}

// TLSConfigFromFiles returns the TLS configuration (for Config.TLS) that
// serves the certificate and private key in the given PEM files.
func TLSConfigFromFiles(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS key pair: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// NewRegistry returns a metrics registry holding the Go runtime's and the
// process's collectors, for Config.Registerer and RunConfig.Gatherer.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// RunConfig says where Run listens.
type RunConfig struct {
	// Listen is the gRPC address.
	Listen string
	// MetricsListen, when set, serves Gatherer's metrics at /metrics and
	// the health probes at /healthz and /readyz over plain HTTP.
	MetricsListen string
	Gatherer      prometheus.Gatherer
	// Pprof also serves Go's profiles at /debug/pprof/ on MetricsListen
	// (unauthenticated, like the metrics).
	Pprof bool
	// StopGrace bounds the graceful stop (0: DefaultStopGrace).
	StopGrace time.Duration
	// Listening, if set, is told the addresses once listening (metrics is
	// nil when MetricsListen is empty), before any call is served.
	Listening func(grpcAddr, metricsAddr net.Addr)

	// HTTPListen, when set, serves the HTTP/JSON API of pemba.v1 (under
	// /v1/, through an in-process gRPC-gateway) and its OpenAPI document
	// (/openapi.json) on this address, over TLS when Config.TLS is set.
	HTTPListen string
	// HTTPHandlers are mounted on the HTTP listener beside the API, keyed
	// by http.ServeMux pattern ("/access/v1/", "GET /playground/", ...).
	// They get the listener's request ids and per-route metrics; they
	// authenticate for themselves (Server.RequireKey does it with the
	// server's keys). A pattern that conflicts with another fails Run.
	HTTPHandlers map[string]http.Handler
	// HTTPListening, if set, is told the HTTP address once listening,
	// before Listening.
	HTTPListening func(httpAddr net.Addr)
}

// Run listens as rc says and serves until ctx is done, then stops
// gracefully, cutting calls still running after rc.StopGrace. It returns
// nil after a stop asked for by ctx.
func (s *Server) Run(ctx context.Context, rc RunConfig) error {
	if rc.Pprof && rc.MetricsListen == "" {
		return fmt.Errorf("server: pprof needs a metrics address")
	}
	if len(rc.HTTPHandlers) > 0 && rc.HTTPListen == "" {
		return fmt.Errorf("server: HTTP handlers need an HTTP address")
	}
	lis, err := net.Listen("tcp", rc.Listen)
	if err != nil {
		return err
	}
	var hs *httpSide
	if rc.HTTPListen != "" {
		if hs, err = s.listenHTTP(ctx, rc); err != nil {
			lis.Close()
			return err
		}
		defer hs.close()
	}
	var maddr net.Addr
	if rc.MetricsListen != "" {
		mlis, err := net.Listen("tcp", rc.MetricsListen)
		if err != nil {
			lis.Close()
			return err
		}
		maddr = mlis.Addr()
		hs := &http.Server{Handler: s.metricsMux(rc), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics server", "err", err)
			}
		}()
		defer hs.Close()
	}
	if hs != nil {
		if rc.HTTPListening != nil {
			rc.HTTPListening(hs.lis.Addr())
		}
		hs.serve(s.log)
	}
	if rc.Listening != nil {
		rc.Listening(lis.Addr(), maddr)
	}

	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	grace := rc.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	if hs != nil {
		// Stop taking HTTP requests; those in flight end with their gRPC
		// calls (cut below after the grace at the latest).
		go hs.shutdown(grace)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.Stop()
		<-stopped
	}
	return <-served
}

// metricsMux routes the plain-HTTP side: metrics, probes and, if asked,
// profiles.
func (s *Server) metricsMux(rc RunConfig) *http.ServeMux {
	mux := http.NewServeMux()
	g := rc.Gatherer
	if g == nil {
		g = prometheus.NewRegistry()
	}
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	probes := s.HealthHandler()
	mux.Handle("/healthz", probes)
	mux.Handle("/readyz", probes)
	if rc.Pprof {
		// No /debug/pprof/cmdline: the command line may hold a
		// -datastore-uri with its password.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
