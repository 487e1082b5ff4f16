package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pemba-authz/pemba/api/server"
)

// tokenFlags are serve's identity token flags (docs/operations.md,
// "Identity tokens").
type tokenFlags struct {
	issuer, audience    string
	jwksFile, jwksURL   string
	scopesClaim, prefix string
	tenantClaim         string
	subjectClaim        string
}

func (f *tokenFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.issuer, "token-issuer", "", "also accept identity tokens (JWTs) from this issuer: the exact \"iss\" they carry (with -token-audience and -token-jwks-file or -token-jwks-url)")
	fs.StringVar(&f.audience, "token-audience", "", "identity tokens: the audience (\"aud\") they must name")
	fs.StringVar(&f.jwksFile, "token-jwks-file", "", "identity tokens: the issuer's public keys, a JWKS file (read again every 15 minutes and when a token names an unknown key id)")
	fs.StringVar(&f.jwksURL, "token-jwks-url", "", "identity tokens: the issuer's JWKS https:// URL (fetched on first use, again every 15 minutes and when a token names an unknown key id)")
	fs.StringVar(&f.scopesClaim, "token-scopes-claim", server.DefaultScopesClaim, "identity tokens: the claim holding the caller's scopes (a space-separated string or an array)")
	fs.StringVar(&f.prefix, "token-scope-prefix", "", "identity tokens: only scope values with this prefix count, without it (\"pemba:\" makes \"pemba:check\" the check scope)")
	fs.StringVar(&f.tenantClaim, "token-tenant-claim", "", "identity tokens: the claim holding the caller's tenant (a type prefix such as acme/); when set, tokens without it are refused (empty: tokens have no tenant)")
	fs.StringVar(&f.subjectClaim, "token-subject-claim", server.DefaultSubjectClaim, "identity tokens: the claim naming the caller (logged and recorded with writes as jwt:VALUE)")
}

// verifier returns the token verifier the flags configure, nil without
// -token-issuer. An error is a usage error.
func (f *tokenFlags) verifier(log *slog.Logger) (*server.TokenVerifier, error) {
	if f.issuer == "" {
		if f.audience != "" || f.jwksFile != "" || f.jwksURL != "" || f.tenantClaim != "" || f.prefix != "" {
			return nil, fmt.Errorf("-token-audience, -token-jwks-file, -token-jwks-url, -token-tenant-claim and -token-scope-prefix need -token-issuer")
		}
		return nil, nil
	}
	v, err := server.NewTokenVerifier(server.TokenConfig{
		Issuer: f.issuer, Audience: f.audience, JWKSFile: f.jwksFile, JWKSURL: f.jwksURL,
		ScopesClaim: f.scopesClaim, ScopePrefix: f.prefix, TenantClaim: f.tenantClaim,
		SubjectClaim: f.subjectClaim, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("-token-issuer %s: %w (give -token-audience and one of -token-jwks-file and -token-jwks-url)", f.issuer, err)
	}
	return v, nil
}

// reloadKeysOnHUP reads keysFile again into srv on every SIGHUP until
// ctx ends. A file that does not read or parse, or that SetKeys refuses,
// is logged and leaves the keys in force. Without a keys file SIGHUP is
// logged and ignored (rather than ending the server, its default action).
// The signal is caught from the call on, so a SIGHUP sent once the server
// logs that it serves is never lost. Call stop when serving ends.
func reloadKeysOnHUP(ctx context.Context, srv *server.Server, keysFile string, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if keysFile == "" {
				log.Warn("SIGHUP: no -keys-file to reload")
				continue
			}
			keys, err := server.ReadKeysFile(keysFile, log)
			if err == nil {
				err = srv.SetKeys(keys)
			}
			if err != nil {
				log.Error("SIGHUP: keys not reloaded; the previous keys stay in force", "file", keysFile, "err", err)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}
