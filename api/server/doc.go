// Package server serves Pemba's gRPC API (package pembav1) over an
// *engine.Engine.
//
// # Shape
//
// Every handler does the same four steps: validate the request (required
// fields, sizes, names), convert it to the engine's plain Go types, call
// the engine, and convert the answer back. Handlers return plain Go
// errors; errors.go is the only place where errors become gRPC status
// codes, with errors.Is and errors.As over the typed errors of the engine,
// store, tuple, schema and token packages. Unknown errors become Internal
// with a public message and are logged with their cause.
//
// # Assembly
//
// New builds a *Server from an engine and a Config: the three Pemba
// services, the standard health service and (optionally) reflection,
// behind interceptors for panic recovery, preshared-key authentication, a
// default request deadline and Prometheus metrics (registered on the
// registry in Config, never the global one). cmd/pemba's serve command
// only parses flags and calls New and Serve.
package server
