package server

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// metrics are the server's Prometheus collectors, registered on the
// registry given in Config (never the global one).
type metrics struct {
	requests *prometheus.CounterVec   // method, code
	latency  *prometheus.HistogramVec // method
	checks   *prometheus.CounterVec   // outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "requests_total",
			Help: "gRPC calls handled, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "request_duration_seconds",
			Help: "Time to handle a gRPC call (for streams: the whole stream), by method.",
			// From 100µs (cached checks) to ~100s (long exports).
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"method"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pemba", Name: "check_results_total",
			Help: "Permission checks answered (single and bulk items), by outcome.",
		}, []string{"outcome"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.checks} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe records one finished call.
func (m *metrics) observe(fullMethod string, code codes.Code, seconds float64) {
	method := shortMethod(fullMethod)
	m.requests.WithLabelValues(method, code.String()).Inc()
	m.latency.WithLabelValues(method).Observe(seconds)
}

// checked records the outcome of one check.
func (m *metrics) checked(p pb.Permissionship) {
	m.checks.WithLabelValues(outcomeLabel(p)).Inc()
}

func outcomeLabel(p pb.Permissionship) string {
	switch p {
	case pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		return "has_permission"
	case pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
		return "no_permission"
	case pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return "conditional"
	}
	return "unspecified"
}

// shortMethod turns "/pemba.v1.PermissionsService/CheckPermission" into
// "PermissionsService/CheckPermission" to keep labels short.
func shortMethod(full string) string {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		svc := full[:i]
		if j := strings.LastIndexByte(svc, '.'); j >= 0 {
			svc = svc[j+1:]
		}
		return svc + full[i:]
	}
	return full
}
