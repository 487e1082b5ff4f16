// Package bench is Pemba's load runner: it loads a workload's data set into
// a target, warms it up, drives a request mix at it from N workers (closed
// loop) or at a fixed arrival rate (open loop), and reports per-operation
// latency percentiles, throughput, errors, cache hit rate, CPU time, peak
// memory, load rate and on-disk size. Reports print as a table or JSON, and
// two JSON reports compare operation by operation.
//
// # Targets
//
// A Target is what requests are sent to: four methods (Load, Do, Stats,
// Close), one file per kind. The in-process target (inprocess.go) opens an
// engine over memstore or pebblestore in this process; the gRPC target
// (grpc.go) calls a running server through the generated pemba.v1 stubs;
// the SpiceDB target (spicedb.go) calls any server speaking SpiceDB's
// authzed.api.v1 (SpiceDB, or pemba serve) through the authzed-go client,
// so the same workload compares the two.
//
// # Measurement
//
// Every worker records into its own histograms (package histogram) and
// counters; they are merged only when the run ends, so the hot path takes
// no lock. In open-loop mode the latency of a request is measured from the
// time it was scheduled to be sent, not from when a worker got to it, so a
// stalled target shows up as latency instead of as fewer requests
// (coordinated omission).
package bench
