package validation

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

// TestValidationFilesOnPostgres runs the evaluator end to end on
// PostgreSQL: the showcase file and the semantics files of this package
// (wildcards, cycles, caveats, expiration), each with its cross-checks,
// must pass as they do on the other backends. (It lives here, not in
// pgstore: pgstore's own tests cannot import the engine, which links
// pgstore through engine.OpenStore.)
func TestValidationFilesOnPostgres(t *testing.T) {
	pgtest.ServerURI(t)
	paths, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no validation files: %v", err)
	}
	paths = append(paths, filepath.Join("..", "..", "examples", "enterprise", "enterprise.yaml"))
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(t.Context(), f, Options{NewStore: func() (engine.Store, error) {
				uri, _ := pgtest.NewDatabase(t)
				return engine.OpenStore(t.Context(), engine.StoreOptions{
					Kind: engine.StorePostgres, URI: uri, Migrate: true,
					Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
					Postgres: engine.PostgresOptions{GCInterval: -1, MaxConns: 8},
				})
			}})
			if err != nil {
				t.Fatal(err)
			}
			for _, fl := range res.Failures {
				t.Error(fl)
			}
			if res.Assertions == 0 {
				t.Error("no assertions ran")
			}
		})
	}
}
