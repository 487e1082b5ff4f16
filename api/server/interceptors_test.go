package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// chainUnary composes interceptors as grpc.ChainUnaryInterceptor does.
func chainUnary(ics []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) grpc.UnaryHandler {
	for i := len(ics) - 1; i >= 0; i-- {
		ic, next := ics[i], h
		h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	return h
}

func testServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s := &Server{log: slog.New(slog.DiscardHandler), timeout: cfg.RequestTimeout}
	a, err := newAuthenticator(cfg.Keys, cfg.Tokens, nil, cfg.Clock)
	if err != nil {
		t.Fatal(err)
	}
	s.auth.Store(a)
	if s.metrics, err = newMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUnaryInterceptors(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/pemba.v1.PermissionsService/CheckPermission"}
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		handler grpc.UnaryHandler
		code    codes.Code
		inMsg   string
	}{
		{name: "panic becomes Internal", timeout: time.Minute,
			handler: func(context.Context, any) (any, error) { panic("kaboom") },
			code:    codes.Internal, inMsg: "internal error"},
		{name: "nil pointer panic", timeout: time.Minute,
			handler: func(context.Context, any) (any, error) { var p *int; return *p, nil },
			code:    codes.Internal},
		{name: "default deadline", timeout: time.Minute,
			handler: func(ctx context.Context, _ any) (any, error) {
				d, ok := ctx.Deadline()
				if !ok || time.Until(d) > time.Minute {
					return nil, missing("deadline")
				}
				return "ok", nil
			}, code: codes.OK},
		{name: "caller's deadline kept", timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Hour)
			},
			handler: func(ctx context.Context, _ any) (any, error) {
				if d, _ := ctx.Deadline(); time.Until(d) < 59*time.Minute {
					return nil, missing("the caller's deadline")
				}
				return "ok", nil
			}, code: codes.OK},
		{name: "no default deadline", timeout: -1,
			handler: func(ctx context.Context, _ any) (any, error) {
				if _, ok := ctx.Deadline(); ok {
					return nil, missing("no deadline")
				}
				return "ok", nil
			}, code: codes.OK},
		{name: "anonymous caller", timeout: time.Minute,
			handler: func(ctx context.Context, _ any) (any, error) {
				if callerOf(ctx) != AnonymousCaller {
					return nil, missing("anonymous")
				}
				return "ok", nil
			}, code: codes.OK},
		{name: "plain error mapped", timeout: time.Minute,
			handler: func(context.Context, any) (any, error) { return nil, missing("resource") },
			code:    codes.InvalidArgument, inMsg: "resource: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, Config{RequestTimeout: tt.timeout})
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			_, err := chainUnary(s.unaryInterceptors(), info, tt.handler)(ctx, nil)
			if status.Code(err) != tt.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tt.code)
			}
			if err != nil && !strings.Contains(err.Error(), tt.inMsg) {
				t.Errorf("message %q lacks %q", err, tt.inMsg)
			}
			if err != nil && strings.Contains(err.Error(), "kaboom") {
				t.Errorf("the panic value leaked to the client: %v", err)
			}
			// Every call is counted with its final code.
			if got := counterValue(t, s.metrics.requests, "PermissionsService/CheckPermission", tt.code.String()); got != 1 {
				t.Errorf("requests_total = %v, want 1", got)
			}
		})
	}
}

func counterValue(t *testing.T, c *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestMetrics reads the registry after real calls.
func TestMetrics(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	for _, subject := range []string{"anne", "zoe", "anne"} {
		if _, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: fresh(zk), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", subject, "")}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{})
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			key := fam.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if _, ok := got["pemba_engine_cache_misses_total"]; !ok || got["pemba_engine_compiled_schemas"] < 1 {
		t.Errorf("engine metrics missing: %v", got)
	}
	for key, want := range map[string]float64{
		"pemba_grpc_requests_total,code=OK,method=PermissionsService/CheckPermission":              3,
		"pemba_grpc_requests_total,code=InvalidArgument,method=PermissionsService/CheckPermission": 1,
		"pemba_grpc_request_duration_seconds,method=PermissionsService/CheckPermission":            4,
		"pemba_check_results_total,outcome=has_permission":                                         2,
		"pemba_check_results_total,outcome=no_permission":                                          1,
		"pemba_grpc_in_flight,method=PermissionsService/CheckPermission":                           0,
		"pemba_check_dispatches": 3,
		"pemba_check_depth":      3,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

func TestShortMethod(t *testing.T) {
	for in, want := range map[string]string{
		"/pemba.v1.PermissionsService/CheckPermission":       "PermissionsService/CheckPermission",
		"/grpc.health.v1.Health/Check":                       "Health/Check",
		"/authzed.api.v1.PermissionsService/CheckPermission": "authzed.PermissionsService/CheckPermission",
		"odd": "odd",
	} {
		if got := shortMethod(in); got != want {
			t.Errorf("shortMethod(%q) = %q, want %q", in, got, want)
		}
	}
}
