package validation

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestContextualRelationshipsHoldLikeStoredOnes runs every validation file
// of the repository with a seeded random subset of its relationships moved
// from the store into every read as contextual relationships (none, some,
// most, all): each assertion, expected-subject list and cross-check
// (Check, Expand, LookupResources, LookupSubjects) must still pass, with
// and without the result cache.
func TestContextualRelationshipsHoldLikeStoredOnes(t *testing.T) {
	root := filepath.Join("..", "..")
	var files []*File
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return nil
		}
		f, err := Load(path)
		if err != nil || f.Schema == "" || len(f.Relationships) == 0 || len(f.Assertions)+len(f.Expected) == 0 {
			return nil // not a validation file (an AuthZEN case file, a config)
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// engine/validation/testdata has 9 files with relationships and
	// assertions, examples/enterprise 1: finding fewer means the walk
	// broke, not that there is nothing to test.
	if len(files) < 10 {
		t.Fatalf("found %d validation files, want at least 10", len(files))
	}
	for _, f := range files {
		for seed, share := range []float64{0.3, 0.7, 1} {
			for _, cache := range []int64{0, 1 << 20} {
				rng := rand.New(rand.NewPCG(uint64(seed), 21))
				moved := 0
				opts := Options{CacheBytes: cache, Contextual: func(int, tuple.Relationship) bool {
					if rng.Float64() < share {
						moved++
						return true
					}
					return false
				}}
				rel, _ := filepath.Rel(root, f.Path)
				name := fmt.Sprintf("%s/share%.1f/cache%d", rel, share, cache)
				t.Run(name, func(t *testing.T) {
					res, err := Run(t.Context(), f, opts)
					if err != nil {
						t.Fatal(err)
					}
					if moved == 0 {
						t.Fatalf("seed %d moved no relationship of %d", seed, len(f.Relationships))
					}
					for _, fl := range res.Failures {
						t.Errorf("seed %d, %d of %d relationships contextual, cache %d: %s", seed, moved, len(f.Relationships), cache, fl)
					}
				})
			}
		}
	}
}
