package server

import (
	"context"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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

// TLSFromFiles returns the server option that serves TLS with the
// certificate and private key in the given PEM files.
func TLSFromFiles(certFile, keyFile string) (grpc.ServerOption, error) {
	creds, err := credentials.NewServerTLSFromFile(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return grpc.Creds(creds), nil
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
}

// Run listens as rc says and serves until ctx is done, then stops
// gracefully, cutting calls still running after rc.StopGrace. It returns
// nil after a stop asked for by ctx.
func (s *Server) Run(ctx context.Context, rc RunConfig) error {
	if rc.Pprof && rc.MetricsListen == "" {
		return fmt.Errorf("server: pprof needs a metrics address")
	}
	lis, err := net.Listen("tcp", rc.Listen)
	if err != nil {
		return err
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
