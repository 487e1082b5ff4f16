package client

import "google.golang.org/grpc/credentials"

// KeyCredentials returns per-call credentials that send key as a bearer
// token, as Options.Key does. requireTLS refuses to send the key over a
// plaintext connection; pass false only for loopback or trusted links.
// Servers use it to authenticate to each other (package api/cluster).
func KeyCredentials(key string, requireTLS bool) credentials.PerRPCCredentials {
	return bearer{key: key, secure: requireTLS}
}
