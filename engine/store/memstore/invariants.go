package memstore

import (
	"fmt"

	"github.com/pemba-authz/pemba/engine/store"
)

// checkInvariants panics if the store's structures disagree with each
// other. It runs only in builds with the invariants tag, where a panic
// points at a bug in this package, never at bad input. s.mu is held.
func (s *Store) checkInvariants() {
	if !invariants {
		return
	}
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("memstore: invariant violated: "+format, args...))
	}
	if s.horizon > s.head {
		fail("horizon %d above head %d", s.horizon, s.head)
	}
	for _, ix := range []*index{&s.forward, &s.reverse} {
		if n := ix.len(); n != len(s.records) {
			fail("index holds %d records, map %d", n, len(s.records))
		}
		var prev *record
		for _, ch := range ix.chunks {
			if len(ch) == 0 || len(ch) >= 2*chunkSize {
				fail("chunk of %d records", len(ch))
			}
			for _, r := range ch {
				if s.records[r.key] != r {
					fail("index record %s is not the map's", r.key)
				}
				if prev != nil && compareFields(ix.order(prev.key), ix.order(r.key)) >= 0 {
					fail("index out of order at %s, %s", prev.key, r.key)
				}
				prev = r
			}
		}
	}
	for k, r := range s.records {
		if len(r.versions) == 0 {
			fail("record %s without versions", k)
		}
		for i, v := range r.versions {
			if v.rev > s.head || i > 0 && v.rev <= r.versions[i-1].rev {
				fail("record %s: version revisions out of order", k)
			}
			if !v.deleted && v.rel.Key() != k {
				fail("record %s holds %s", k, v.rel.Key())
			}
		}
	}
	for i, cs := range s.changes {
		if cs.Revision != s.horizon+1+store.Revision(i) {
			fail("change set %d at position %d with horizon %d", cs.Revision, i, s.horizon)
		}
	}
	if len(s.changes) > 0 && s.changes[len(s.changes)-1].Revision != s.head {
		fail("last change set %d, head %d", s.changes[len(s.changes)-1].Revision, s.head)
	}
	for i := 1; i < len(s.schemas); i++ {
		if s.schemas[i].rev <= s.schemas[i-1].rev {
			fail("schema versions out of order")
		}
	}
}
