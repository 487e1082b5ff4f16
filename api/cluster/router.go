package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Defaults for Config fields left zero.
const (
	// DefaultTimeout bounds one dispatch. A subproblem is usually answered
	// in well under a millisecond; one that takes longer than this is
	// evaluated locally instead of waiting on a slow peer.
	DefaultTimeout = time.Second
	// DefaultDownFor is how long a peer that failed is skipped before it
	// is tried again.
	DefaultDownFor = 2 * time.Second
)

// Config configures a Router.
type Config struct {
	// Self is this node's address as it appears in Peers.
	Self string
	// Peers are the addresses (host:port) of every node of the cluster,
	// this one included. Every node must be given the same list, so that
	// all agree on who owns what.
	Peers []string
	// Fingerprint identifies the datastore (Engine.Fingerprint, or engine.FingerprintOf before the engine is opened):
	// peers on another datastore refuse dispatches.
	Fingerprint engine.Fingerprint
	// DialOptions are used for every peer connection: transport
	// credentials and the preshared key (client.KeyCredentials).
	DialOptions []grpc.DialOption
	// Timeout bounds one dispatch (0: DefaultTimeout).
	Timeout time.Duration
	// DownFor is how long a failed peer is skipped (0: DefaultDownFor).
	DownFor time.Duration
	// VirtualNodes is the number of ring points per node (0: default).
	VirtualNodes int
	// Now is the clock for DownFor (nil: time.Now).
	Now func() time.Time
	// Logger receives peer state changes (nil: discard).
	Logger *slog.Logger
}

// Router is an engine.Router that sends each permission subproblem to its
// owner among the cluster's nodes over gRPC (pemba.v1.DispatchService).
// A peer that cannot be reached, errs or times out is skipped for a
// while: its subproblems are evaluated locally, so a node going down
// never fails a caller's check, it only costs cache locality.
type Router struct {
	ring    *Ring
	self    string
	fp      []byte
	timeout time.Duration
	downFor time.Duration
	now     func() time.Time
	log     *slog.Logger
	peers   map[string]*peer // every node but self

	dispatches *prometheus.CounterVec
}

// peer is one other node: its connection and health.
type peer struct {
	r    *Router
	addr string
	conn *grpc.ClientConn
	api  pb.DispatchServiceClient
	// downUntil is the UnixNano until which the peer is skipped (0: up).
	downUntil atomic.Int64
	// The peer's series of Router.dispatches, looked up once.
	ok, failedN, skipped prometheus.Counter
	logMu                sync.Mutex
	down                 bool // last logged state, under logMu
}

// New connects (lazily) to the peers of cfg. Close releases the
// connections.
func New(cfg Config) (*Router, error) {
	if !slices.Contains(cfg.Peers, cfg.Self) {
		return nil, fmt.Errorf("cluster: this node (%q) is not among the peers %q", cfg.Self, cfg.Peers)
	}
	r := &Router{
		ring:    NewRing(cfg.Peers, cfg.VirtualNodes),
		self:    cfg.Self,
		fp:      cfg.Fingerprint[:],
		timeout: cfg.Timeout,
		downFor: cfg.DownFor,
		now:     cfg.Now,
		log:     cfg.Logger,
		peers:   make(map[string]*peer),
		dispatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pemba",
			Subsystem: "cluster",
			Name:      "dispatches_total",
			Help:      "Subproblems owned by another node, by peer and outcome: ok (answered by the peer), failed (evaluated here after the peer failed), skipped (evaluated here because the peer was marked down).",
		}, []string{"peer", "outcome"}),
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.downFor <= 0 {
		r.downFor = DefaultDownFor
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	opts := append([]grpc.DialOption{
		// Reconnect quickly to a peer that comes back: gRPC's default
		// backoff grows to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: r.downFor},
			MinConnectTimeout: r.timeout,
		}),
	}, cfg.DialOptions...)
	for _, addr := range r.ring.Nodes() {
		if addr == cfg.Self {
			continue
		}
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("cluster: peer %s: %w", addr, err)
		}
		r.peers[addr] = &peer{r: r, addr: addr, conn: conn, api: pb.NewDispatchServiceClient(conn),
			ok:      r.dispatches.WithLabelValues(addr, "ok"),
			failedN: r.dispatches.WithLabelValues(addr, "failed"),
			skipped: r.dispatches.WithLabelValues(addr, "skipped"),
		}
	}
	return r, nil
}

// Close closes the peer connections.
func (r *Router) Close() error {
	var errs []error
	for _, p := range r.peers {
		errs = append(errs, p.conn.Close())
	}
	return errors.Join(errs...)
}

// Collector returns the router's metrics, for registration.
func (r *Router) Collector() prometheus.Collector { return r.dispatches }

// Owner returns the node that owns the permission relation of typ:id.
func (r *Router) Owner(typ, id, relation string) string {
	var buf [128]byte
	return r.ring.Owner(appendKey(buf[:0], typ, id, relation))
}

// Route implements engine.Router.
func (r *Router) Route(typ, id, relation string) engine.Peer {
	owner := r.Owner(typ, id, relation)
	if owner == r.self {
		return nil
	}
	p := r.peers[owner]
	if until := p.downUntil.Load(); until != 0 && r.now().UnixNano() < until {
		p.skipped.Inc()
		return nil
	}
	return p
}

// DispatchCheck sends req to the peer; on failure the peer is marked down
// and the caller evaluates req itself. A max-depth answer is no failure:
// it comes back as an error matching engine.ErrMaxDepth.
func (p *peer) DispatchCheck(ctx context.Context, req *engine.DispatchRequest) (*engine.DispatchResponse, error) {
	in, err := p.r.toProto(req)
	if err != nil {
		return nil, err // a context that cannot be encoded: evaluate here
	}
	cctx, cancel := context.WithTimeout(ctx, p.r.timeout)
	defer cancel()
	out, err := p.api.DispatchCheck(cctx, in)
	if client.MaxDepthExceeded(err) {
		// An answer, not a fault: the path is too deep wherever it is
		// evaluated. The caller reproduces it locally, with its path.
		p.up()
		return nil, fmt.Errorf("cluster: peer %s: %w: %s", p.addr, engine.ErrMaxDepth, status.Convert(err).Message())
	}
	if err != nil {
		if ctx.Err() == nil { // the caller gave up: not the peer's fault
			p.failed(err)
		}
		return nil, err
	}
	p.up()
	return fromProto(out)
}

func (p *peer) failed(err error) {
	p.failedN.Inc()
	p.downUntil.Store(p.r.now().Add(p.r.downFor).UnixNano())
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if !p.down {
		p.down = true
		p.r.log.Warn("cluster peer failed; evaluating its subproblems locally", "peer", p.addr, "for", p.r.downFor, "err", err)
	}
}

func (p *peer) up() {
	p.ok.Inc()
	if p.downUntil.Load() == 0 {
		return
	}
	p.downUntil.Store(0)
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if p.down {
		p.down = false
		p.r.log.Info("cluster peer answers again", "peer", p.addr)
	}
}

func (r *Router) toProto(req *engine.DispatchRequest) (*pb.DispatchCheckRequest, error) {
	out := &pb.DispatchCheckRequest{
		DatastoreFingerprint: r.fp,
		Revision:             uint64(req.Revision),
		Now:                  timestamppb.New(req.Now),
		Resource:             client.Object(req.Resource),
		Relation:             req.Relation,
		Subject:              client.Subject(req.Subject),
		Path:                 make([]*pb.DispatchPathStep, len(req.Path)),
	}
	for i, s := range req.Path {
		out.Path[i] = &pb.DispatchPathStep{Resource: client.Object(tuple.ObjectRef{Type: s.ResourceType, ID: s.ResourceID}), Relation: s.Relation}
	}
	if len(req.Context) > 0 {
		b, err := json.Marshal(req.Context)
		if err != nil {
			return nil, fmt.Errorf("cluster: caveat context: %w", err)
		}
		out.ContextJson = b
	}
	return out, nil
}

func fromProto(in *pb.DispatchCheckResponse) (*engine.DispatchResponse, error) {
	out := &engine.DispatchResponse{
		MissingContext: in.GetMissingContext(),
		Cut:            int(in.GetCut()),
		Dispatches:     int(in.GetDispatches()),
		Depth:          int(in.GetDepth()),
	}
	switch in.GetPermissionship() {
	case pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
		out.Permissionship = engine.NoPermission
	case pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		out.Permissionship = engine.HasPermission
	case pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		out.Permissionship = engine.ConditionalPermission
	default:
		return nil, fmt.Errorf("cluster: peer answered permissionship %v", in.GetPermissionship())
	}
	if in.GetExpiresAt() != nil {
		out.Expires = in.GetExpiresAt().AsTime()
	}
	return out, nil
}
