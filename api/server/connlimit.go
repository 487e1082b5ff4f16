package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Connections bounds the server's client connections.
type Connections struct {
	// Max is how many connections may be open at once (0: no limit). A
	// connection past it is closed as soon as it is accepted (its client
	// sees UNAVAILABLE and retries), counted in
	// pemba_grpc_connections_refused_total.
	Max int
	// MaxStreams bounds the concurrent calls and streams of one
	// connection (0: DefaultMaxStreamsPerConnection); further ones wait in
	// the client until one ends.
	MaxStreams uint32
	// IdleTimeout closes a connection that has had no call for this long
	// (0: never), so abandoned clients do not hold connections forever.
	IdleTimeout time.Duration
}

// DefaultMaxStreamsPerConnection is Connections.MaxStreams when unset:
// enough for any well-behaved client multiplexing its calls, far below
// grpc-go's unlimited default.
const DefaultMaxStreamsPerConnection = 1000

// connMetrics count open and refused connections.
type connMetrics struct {
	open    prometheus.Gauge
	refused prometheus.Counter
}

func newConnMetrics(reg prometheus.Registerer) (*connMetrics, error) {
	m := &connMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "connections",
			Help: "Client connections open on the gRPC listener.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pemba", Subsystem: "grpc", Name: "connections_refused_total",
			Help: "Connections closed on accept because Connections.Max (-max-connections) were open.",
		}),
	}
	for _, c := range []prometheus.Collector{m.open, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// limitListener counts the connections it accepts and closes those past
// max at once.
type limitListener struct {
	net.Listener
	max  int64
	open atomic.Int64
	m    *connMetrics
}

// Accept returns the next connection within the limit.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			l.m.refused.Inc()
			c.Close()
			continue
		}
		l.m.open.Inc()
		return &countedConn{Conn: c, l: l}, nil
	}
}

// countedConn gives its slot back once, when closed.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.m.open.Dec()
	})
	return c.Conn.Close()
}
