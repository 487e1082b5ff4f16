// Package pembav1 holds the Go code generated from Pemba's gRPC API
// definitions in api/proto/pemba/v1: the messages and the clients and
// server interfaces of PermissionsService, SchemaService and WatchService.
//
// Every other file in this directory is generated; edit the .proto files
// and regenerate with api/generate.sh (see docs/api.md).
package pembav1

//go:generate sh ../generate.sh
