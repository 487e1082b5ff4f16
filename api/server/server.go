package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	// gzip responses to gzip requests (requests are decompressed by
	// gunzip, decode.go), whatever else the binary links.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
)

// Config configures a Server. The zero value serves without
// authentication, without reflection, with DefaultRequestTimeout, and
// with metrics on a private registry.
type Config struct {
	// Keys are the accepted preshared keys. With none (and no Tokens),
	// authentication is off and every write is recorded as
	// AnonymousCaller. SetKeys replaces them while serving.
	Keys []Key
	// Tokens, when set, also accepts identity tokens (JWTs) that it
	// verifies, beside the keys.
	Tokens *TokenVerifier
	// Clock is the time of the keys' rate limits (nil: time.Now).
	Clock func() time.Time
	// HealthWithoutAuth lets health checks through without a key (for
	// load balancers and orchestrators).
	HealthWithoutAuth bool
	// Reflection registers the gRPC reflection service (for grpcurl and
	// similar tools).
	Reflection bool
	// ReflectionWithoutAuth lets reflection through without a key.
	ReflectionWithoutAuth bool
	// RequestTimeout is the deadline of unary calls that arrive without
	// one: 0 means DefaultRequestTimeout, negative means none.
	RequestTimeout time.Duration
	// Registerer receives the server's metrics; nil means a new private
	// registry (the metrics are then collected but not exposed).
	Registerer prometheus.Registerer
	// Logger receives errors and their causes (nil: discard).
	Logger *slog.Logger
	// AccessLog logs every call at info level (method, caller, code,
	// duration, request id); without it those lines are at debug level.
	AccessLog bool
	// MaxRecvMsgBytes bounds one request message: 0 means
	// MaxRecvMsgBytes (the constant); larger messages fail with
	// ResourceExhausted.
	MaxRecvMsgBytes int
	// Overload configures the server-wide limits on concurrent calls and
	// streams (see Overload); the zero value sets none.
	Overload Overload
	// Connections bounds client connections: how many, how many calls
	// each, how long idle (the zero value: DefaultMaxStreamsPerConnection
	// calls per connection, nothing else).
	Connections Connections
	// GRPCOptions are appended to the server's options.
	GRPCOptions []grpc.ServerOption
	// TLS, when set, serves gRPC and the HTTP listener (RunConfig.HTTPListen)
	// over TLS with this configuration (see TLSConfigFromFiles). Give TLS
	// here rather than as a grpc.Creds in GRPCOptions: the HTTP gateway's
	// in-process connection to the gRPC server must know to speak it.
	TLS *tls.Config
	// Tracing, when its TracerProvider is set, records a span per call
	// and HTTP request (see tracing.go); off by default.
	Tracing Tracing
}

// Server is the gRPC server of one engine.
type Server struct {
	eng      *engine.Engine
	grpc     *grpc.Server
	health   *health.Server
	auth     atomic.Pointer[authenticator]
	clock    func() time.Time
	exempt   []string // method prefixes that skip authentication
	timeout  time.Duration
	metrics  *metrics
	httpm    *httpMetrics
	log      *slog.Logger
	tls      *tls.Config // nil: plaintext
	tracing  Tracing     // off unless its TracerProvider is set
	maxRecv  int         // bytes of one request message
	overload *overload
	guards   *streamGuards
	// authFailures logs failed authentications (rate-limited).
	authFailures *authFailures
	// maxConns and connm limit and count client connections.
	maxConns int
	connm    *connMetrics
	// callLevel is the level of the line logged per call.
	callLevel slog.Level
	// stopping is set when GracefulStop or Stop begins (/readyz turns 503).
	stopping atomic.Bool
	// stopped is cancelled when stopping begins: endless streams (Watch)
	// end then instead of holding the graceful stop for its whole grace.
	stopped   context.Context
	beginStop func()
}

// ErrShuttingDown is the cause of a StreamContext cancelled because the
// server began to stop.
var ErrShuttingDown = errors.New("server: shutting down")

// StreamContext returns ctx, cancelled with cause ErrShuttingDown as soon
// as the server begins to stop. An endless stream (Watch, or another API's
// watch on this server) runs under it so that it ends at once, with a
// status that tells the client to resume, instead of holding a graceful
// stop for its whole grace. Call cancel when the stream ends.
func (s *Server) StreamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(s.stopped, func() { cancel(ErrShuttingDown) })
	return ctx, func() {
		unhook()
		cancel(context.Canceled)
	}
}

// Service names, as health checks know them.
var serviceNames = []string{
	pb.PermissionsService_ServiceDesc.ServiceName,
	pb.SchemaService_ServiceDesc.ServiceName,
	pb.WatchService_ServiceDesc.ServiceName,
	pb.AuditService_ServiceDesc.ServiceName,
	pb.BackupService_ServiceDesc.ServiceName,
}

// New assembles a server over e. It does not listen; call Serve.
func New(e *engine.Engine, cfg Config) (*Server, error) {
	if e == nil {
		return nil, fmt.Errorf("server: nil engine")
	}
	auth, err := newAuthenticator(cfg.Keys, cfg.Tokens, nil, cfg.Clock)
	if err != nil {
		return nil, err
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	hm, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(newEngineCollector(e.Stats)); err != nil {
		return nil, fmt.Errorf("server: register engine metrics: %w", err)
	}
	if err := registerStoreMetrics(reg, e); err != nil {
		return nil, fmt.Errorf("server: register store metrics: %w", err)
	}
	ov, err := newOverload(cfg.Overload, reg)
	if err != nil {
		return nil, err
	}
	guards, err := newStreamGuards(cfg.Overload, reg)
	if err != nil {
		return nil, err
	}
	connm, err := newConnMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("server: register connection metrics: %w", err)
	}
	s := &Server{
		maxConns: cfg.Connections.Max,
		connm:    connm,
		eng:      e,
		clock:    cfg.Clock,
		timeout:  cfg.RequestTimeout,
		metrics:  m,
		httpm:    hm,
		log:      cfg.Logger,
		tls:      cfg.TLS,
		tracing:  cfg.Tracing,
		health:   health.NewServer(),
		overload: ov,
		guards:   guards,
	}
	s.auth.Store(auth)
	var stop context.CancelFunc
	s.stopped, stop = context.WithCancel(context.Background())
	s.beginStop = func() {
		s.stopping.Store(true)
		stop()
		s.health.Shutdown()
	}
	if s.timeout == 0 {
		s.timeout = DefaultRequestTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.authFailures = newAuthFailures(s.log, cfg.Clock)
	s.callLevel = slog.LevelDebug
	if cfg.AccessLog {
		s.callLevel = slog.LevelInfo
	}
	if cfg.HealthWithoutAuth {
		s.exempt = append(s.exempt, "/grpc.health.v1.Health/")
	}
	if cfg.ReflectionWithoutAuth {
		s.exempt = append(s.exempt, "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/")
	}
	maxRecv := cfg.MaxRecvMsgBytes
	if maxRecv <= 0 {
		maxRecv = MaxRecvMsgBytes
	}
	s.maxRecv = maxRecv
	maxStreams := cfg.Connections.MaxStreams
	if maxStreams == 0 {
		maxStreams = DefaultMaxStreamsPerConnection
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxSendMsgSize(MaxSendMsgBytes),
		// Requests that do not decode: INVALID_ARGUMENT (decode.go).
		grpc.ForceServerCodecV2(newDecodeCodec()),
		//lint:ignore SA1019 the only per-server way to decompress gzip requests ourselves (decode.go)
		grpc.RPCDecompressor(&gunzip{max: int64(maxRecv)}),
		// Watch streams can stay quiet for hours; let clients keep their
		// connections alive with pings without being told to go away.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.ChainUnaryInterceptor(s.unaryInterceptors()...),
		grpc.ChainStreamInterceptor(s.streamInterceptors()...),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	if cfg.Connections.IdleTimeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.Connections.IdleTimeout}))
	}
	opts = append(opts, cfg.Tracing.serverOptions()...)
	s.grpc = grpc.NewServer(append(opts, cfg.GRPCOptions...)...)
	services := decodingServer{s.grpc, s.eng.HoldMemory} // undecodable requests: INVALID_ARGUMENT (decode.go)
	pb.RegisterPermissionsServiceServer(services, &permissions{s: s})
	pb.RegisterSchemaServiceServer(services, &schemas{s: s})
	pb.RegisterWatchServiceServer(services, &watcher{s: s})
	pb.RegisterAuditServiceServer(services, &auditor{s: s})
	pb.RegisterDispatchServiceServer(services, &dispatcher{s: s})
	pb.RegisterBackupServiceServer(services, &backups{s: s})
	healthpb.RegisterHealthServer(services, s.health)
	if cfg.Reflection {
		reflection.Register(services)
	}
	for _, name := range serviceNames {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return s, nil
}

// SetKeys replaces the server's preshared keys, for calls that start
// from now on (pemba serve calls it on SIGHUP with the keys file read
// again). Keys whose name and limits are unchanged keep their rate and
// concurrency state. It refuses, leaving the keys in force, keys that
// New would refuse, and an empty set on a server that authenticates
// (authentication cannot be turned off, nor on, while serving).
func (s *Server) SetKeys(keys []Key) error {
	old := s.auth.Load()
	next, err := newAuthenticator(keys, old.tokens, old, s.clock)
	if err != nil {
		return err
	}
	if next.enabled() != old.enabled() {
		return fmt.Errorf("server: reloading keys cannot turn authentication on or off (%d keys now, %d given)", len(old.digests), len(keys))
	}
	s.auth.Store(next)
	s.log.Info("keys reloaded", "keys", len(keys))
	return nil
}

// Serve accepts connections on lis until Stop or GracefulStop.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(&limitListener{Listener: lis, max: int64(s.maxConns), m: s.connm})
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		// ErrServerStopped: Stop came before Serve, which is a stop like
		// one during Serve (that returns nil), not a failure.
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// GracefulStop reports NOT_SERVING to health checks, stops accepting
// connections and waits for calls in flight. Open streams (Watch) keep it
// waiting until they end; use Stop to cut them.
func (s *Server) GracefulStop() {
	s.beginStop()
	s.grpc.GracefulStop()
}

// Stop closes every connection and cancels calls in flight.
func (s *Server) Stop() {
	s.beginStop()
	s.grpc.Stop()
}
