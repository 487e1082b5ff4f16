// Package cluster lets several `pemba serve` processes on one shared
// datastore (PostgreSQL) act as one cluster: each permission subproblem
// (resource, permission) has an owner node chosen by consistent hashing
// (Ring), and the Router sends it there over gRPC, so that each node's
// cache holds a distinct slice of the answers instead of every node
// caching everything.
//
// Ownership is only about caching: every node can evaluate everything.
// A peer that is down, slow or misconfigured is skipped for a while
// (Config.DownFor) and its subproblems are evaluated by the node that
// needed them, so a node failure never fails a caller's check.
//
// Every node must be started with the same peer list (--dispatch-peers).
// A dispatched subproblem carries its revision, the caller's clock, the
// caveat context and the path above it, so the owner's answer is exactly
// the one the sender would have computed (see engine.Router).
package cluster
