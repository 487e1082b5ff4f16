// Package authzed serves SpiceDB's public gRPC API, authzed.api.v1
// (PermissionsService, SchemaService, WatchService), over a Pemba engine,
// so that programs written against the authzed client libraries (Go,
// Java, Python, Node, Ruby, .NET) and zed move to Pemba by changing an
// address.
//
// The wire types are the API's published definitions, the generated
// package proto/authzed/api/v1 of github.com/authzed/authzed-go; nothing
// of SpiceDB's own code is used. This package is one thin conversion
// layer: it validates and converts each request onto package engine and
// converts the answer back. It registers its services on an
// api/server.Server, so the same listener, keys (authorization: Bearer
// <key>), TLS, limits, metrics and logging apply, and errors become gRPC
// codes through api/server's one error table. ZedTokens are Pemba
// zookies (the same strings), so a token from either API is accepted by
// the other.
//
// A field Pemba cannot honour is refused with UNIMPLEMENTED (a feature
// Pemba lacks) or INVALID_ARGUMENT (a value Pemba rejects), naming the
// field; none is silently ignored. docs/compat.md lists every RPC and
// notable field and how each is served.
package authzed
