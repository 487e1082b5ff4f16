package workload

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// digest hashes a workload's relationship stream and counts it.
func digest(t *testing.T, w Workload) ([32]byte, int) {
	t.Helper()
	h := sha256.New()
	n := 0
	for r, err := range w.Relationships() {
		if err != nil {
			t.Fatalf("%s: relationship %d: %v", w.Name(), n, err)
		}
		fmt.Fprintln(h, r.String())
		n++
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}

func TestDeterministic(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			a, _ := New(name, Small, 1)
			b, _ := New(name, Small, 1)
			c, _ := New(name, Small, 2)
			da, na := digest(t, a)
			db, _ := digest(t, b)
			dc, _ := digest(t, c)
			if da != db {
				t.Error("same seed gave different relationships")
			}
			if da == dc {
				t.Error("different seeds gave the same relationships")
			}
			if na != a.Size() {
				t.Errorf("yielded %d relationships, Size says %d", na, a.Size())
			}
			// Within a factor of 3 of the scale's target: small is ~10k.
			if target := Small.Target(); na < target/3 || na > 3*target+maxBigMembers/10 {
				t.Errorf("%d relationships at scale small (target %d)", na, target)
			}
			// Request sources: same stream same requests, other streams differ.
			s1, s2, s3 := a.Source(7), b.Source(7), a.Source(8)
			same, differ := true, false
			for i := range 200 {
				op := Op(i % int(NumOps))
				r1, r2, r3 := s1.Next(op).String(), s2.Next(op).String(), s3.Next(op).String()
				same = same && r1 == r2
				differ = differ || r1 != r3
			}
			if !same || !differ {
				t.Errorf("sources: same stream equal = %v, other stream differs = %v", same, differ)
			}
		})
	}
}

// allowed reports whether r fits relation rel's allowed subject types,
// the shape check the engine also makes on every write.
func allowed(rel *schema.Relation, r tuple.Relationship) bool {
	for _, a := range rel.Allowed {
		subRel := r.Subject.Relation
		if subRel == tuple.Ellipsis {
			subRel = ""
		}
		if a.Type != r.Subject.Type || a.Relation != subRel || a.Wildcard != r.Subject.IsWildcard() {
			continue
		}
		if (a.Caveat == nil) != (r.Caveat == nil) || (a.Caveat != nil && a.Caveat.Name != r.Caveat.Name) {
			continue
		}
		if a.Expiration == r.Expiration.IsZero() {
			continue
		}
		return true
	}
	return false
}

func TestRelationshipsFitSchema(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			w, err := New(name, Small, 3)
			if err != nil {
				t.Fatal(err)
			}
			s, err := schema.Compile(name+".zed", w.Schema())
			if err != nil {
				t.Fatalf("schema: %v", err)
			}
			seen := map[tuple.Key]bool{}
			bad := 0
			for r, err := range w.Relationships() {
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Validate(); err != nil {
					t.Fatalf("%s: %v", r, err)
				}
				if seen[r.Key()] {
					t.Fatalf("duplicate relationship %s", r.Key())
				}
				seen[r.Key()] = true
				def := s.Definitions[r.Resource.Type]
				if def == nil || def.Relations[r.Relation] == nil || def.Relations[r.Relation].IsPermission ||
					!allowed(def.Relations[r.Relation], r) {
					if bad++; bad <= 5 {
						t.Errorf("does not fit the schema: %s", r)
					}
				}
			}
			checkRequests(t, s, w)
		})
	}
}

// checkRequests makes sure requests name types and permissions that exist.
func checkRequests(t *testing.T, s *schema.Schema, w Workload) {
	t.Helper()
	src := w.Source(1)
	for i := range 400 {
		op := Op(i % int(NumOps))
		q := src.Next(op)
		if q.Op != op {
			t.Fatalf("asked for %s, got %s", op, q)
		}
		typ := q.Resource.Type
		if op == OpLookupResources {
			typ = q.ResourceType
		}
		if op != OpWrite {
			if d := s.Definitions[typ]; d == nil || d.Relations[q.Permission] == nil {
				t.Fatalf("request names an unknown permission: %s", q)
			}
		} else if len(q.Updates) == 0 {
			t.Fatalf("empty write: %s", q)
		}
		if op == OpCheck && q.Expect == ExpectUnknown {
			t.Fatalf("check without an expectation: %s", q)
		}
	}
}

func TestCheckMix(t *testing.T) {
	// Mostly allowed, some denied: a realistic service sees both.
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			w, _ := New(name, Small, 1)
			src := w.Source(0)
			counts := map[Expect]int{}
			for range 2000 {
				counts[src.Next(OpCheck).Expect]++
			}
			if a, d := counts[ExpectAllowed], counts[ExpectDenied]; a < 1000 || d < 100 {
				t.Errorf("allowed %d, denied %d of 2000 checks", a, d)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"small", false}, {"medium", false}, {"large", false}, {"huge", true}, {"", true},
	}
	for _, tc := range tests {
		sc, err := ParseScale(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseScale(%q) = %v, %v", tc.in, sc, err)
		}
		if err == nil && sc.String() != tc.in {
			t.Errorf("ParseScale(%q).String() = %q", tc.in, sc)
		}
		if err != nil && !errors.Is(err, ErrUnknown) {
			t.Errorf("ParseScale(%q) error %v does not wrap ErrUnknown", tc.in, err)
		}
	}
	for o := range NumOps {
		if got, err := ParseOp(o.String()); err != nil || got != o {
			t.Errorf("ParseOp(%q) = %v, %v", o, got, err)
		}
	}
	if _, err := New("nope", Small, 1); !errors.Is(err, ErrUnknown) {
		t.Errorf("New(nope) error = %v", err)
	}
}

func TestEnterpriseShape(t *testing.T) {
	w := newEnterprise(base{scale: Medium, seed: 1})
	var biggest uint64
	small := 0
	deepest := 0
	for k, p := range w.ents {
		biggest = max(biggest, p.n)
		if p.n <= 2*entMinSize {
			small++
		}
		depth := 1
		for j := p.depts - 1; ; depth++ {
			par, ok := w.deptParent(uint64(k), j)
			if !ok {
				break
			}
			j = par
		}
		deepest = max(deepest, depth)
	}
	if biggest != entMaxSize {
		t.Errorf("largest enterprise has %d employees, want %d", biggest, entMaxSize)
	}
	if small < len(w.ents)/2 {
		t.Errorf("only %d of %d enterprises are small", small, len(w.ents))
	}
	if deepest != maxDeptDepth {
		t.Errorf("deepest department nesting %d, want %d", deepest, maxDeptDepth)
	}
	unapproved, expired := 0, 0
	for l := range uint64(len(w.links)) {
		if !w.linkApproved(l) {
			unapproved++
		}
		for j := range w.grants(l, 0) {
			if e := w.grantExpiration(l, 0, j); !e.IsZero() && e.Before(validTill) {
				expired++
			}
		}
	}
	if unapproved == 0 || expired == 0 {
		t.Errorf("links: %d unapproved, %d expired grants; want some of each", unapproved, expired)
	}
}
