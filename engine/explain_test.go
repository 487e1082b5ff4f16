package engine_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/engine/validation"
)

// validationFiles lists every zed validation file of the repository: the
// YAML files that load as one and carry a schema.
func validationFiles(t *testing.T) []*validation.File {
	t.Helper()
	var out []*validation.File
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		f, err := validation.Load(path)
		if err != nil || f.Schema == "" {
			return nil // another kind of YAML file
		}
		out = append(out, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// explainEngine opens an engine over a fresh memstore at the clock of the
// validation tests, with schemaText and rels written.
func explainEngine(t *testing.T, schemaText string, rels []tuple.Relationship) *engine.Engine {
	t.Helper()
	now := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	st := memstore.New(memstore.Options{Now: now})
	t.Cleanup(func() { st.Close() })
	eng, err := engine.Open(t.Context(), st, engine.Options{Now: now, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	// A proof's relationships alone need not keep the schema's invariants
	// (an enterprise's creator is rarely part of one).
	if _, _, err := eng.WriteSchema(t.Context(), "test", withoutInvariants(schemaText)); err != nil {
		t.Fatal(err)
	}
	for len(rels) > 0 {
		n := min(len(rels), eng.Limits().MaxUpdatesPerWrite)
		ups := make([]engine.Update, n)
		for i, r := range rels[:n] {
			ups[i] = engine.Update{Op: engine.OpTouch, Relationship: r}
		}
		if _, err := eng.WriteRelationships(t.Context(), engine.WriteRequest{Caller: "test", Updates: ups}); err != nil {
			t.Fatal(err)
		}
		rels = rels[n:]
	}
	return eng
}

// TestExplainValidationFiles explains every assertion of every validation
// file in the repository: a grant's explanation is a proof (its
// relationships alone, written into a fresh store with the same schema,
// give the grant again, caveat context included), a denial names a
// failing branch, a conditional answer a caveat that needs context.
func TestExplainValidationFiles(t *testing.T) {
	files := validationFiles(t)
	if len(files) < 5 {
		t.Fatalf("found %d validation files; the walk is broken", len(files))
	}
	total, nearest := 0, 0
	for _, f := range files {
		t.Run(f.Path, func(t *testing.T) {
			rels := make([]tuple.Relationship, len(f.Relationships))
			for i, r := range f.Relationships {
				rels[i] = r.Relationship
			}
			eng := explainEngine(t, f.Schema, rels)
			for _, a := range f.Assertions {
				total++
				req := engine.CheckRequest{CheckRequest: engine.CheckQuery{Resource: a.Resource, Permission: a.Permission, Subject: a.Subject}, Context: a.Context}
				resp, err := eng.Explain(t.Context(), req)
				if err != nil {
					t.Errorf("%s: %s: %v", a.Pos, a.Text, err)
					continue
				}
				want := map[validation.AssertionKind]engine.Permissionship{validation.AssertTrue: engine.HasPermission,
					validation.AssertFalse: engine.NoPermission, validation.AssertCaveated: engine.ConditionalPermission}[a.Kind]
				if resp.Permissionship != want || resp.Zookie == "" {
					t.Errorf("%s: %s: explained %v (zookie %q), the file asserts %v", a.Pos, a.Text, resp.Permissionship, resp.Zookie, want)
					continue
				}
				x := resp.Explanation
				switch resp.Permissionship {
				case engine.HasPermission:
					proof := x.Relationships()
					replay, err := explainEngine(t, f.Schema, proof).Check(t.Context(), req)
					if err != nil || replay.Permissionship != engine.HasPermission {
						t.Errorf("%s: %s: the witness %v alone gives %v (%v)", a.Pos, a.Text, proof, replay.Permissionship, err)
					}
				case engine.NoPermission:
					if !failingBranch(x.Root) {
						t.Errorf("%s: %s: a denial that names no failing branch", a.Pos, a.Text)
					}
					if w := x.Nearest; w != nil {
						// The nearest grant, written beside the data, grants.
						with := []tuple.Relationship{*w}
						for _, r := range rels {
							if r.Key() != w.Key() {
								with = append(with, r)
							}
						}
						got, err := explainEngine(t, f.Schema, with).Check(t.Context(), req)
						if err != nil || got.Permissionship != engine.HasPermission {
							t.Errorf("%s: %s: the nearest grant %v, written, gives %v (%v)", a.Pos, a.Text, w, got.Permissionship, err)
						}
						nearest++
					}
				case engine.ConditionalPermission:
					if len(resp.MissingContext) == 0 || !hasReason(x.Root, engine.ReasonCaveatMissing) {
						t.Errorf("%s: %s: a conditional answer without the context it needs", a.Pos, a.Text)
					}
				}
			}
		})
	}
	if total < 50 {
		t.Fatalf("explained %d assertions; the repository holds more", total)
	}
	t.Logf("explained %d assertions of %d files; %d denials named a nearest grant, each tried", total, len(files), nearest)
}

func hasReason(n *engine.ExplainNode, r engine.ExplainReason) bool {
	if n.Reason == r {
		return true
	}
	for _, c := range n.Children {
		if hasReason(c, r) {
			return true
		}
	}
	return false
}

// failingBranch reports whether n or a node below it says why something
// does not grant.
func failingBranch(n *engine.ExplainNode) bool {
	if n.Kind == engine.ExplainNil || (n.Reason != engine.ReasonNone && n.Reason != engine.ReasonSubjectItself) {
		return true
	}
	for _, c := range n.Children {
		if failingBranch(c) {
			return true
		}
	}
	return false
}
