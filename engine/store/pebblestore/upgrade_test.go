package pebblestore

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// writeLegacy turns the format 3 store in "db" into the directory a format
// 2 binary would have left: the same keys under Pebble's default comparer,
// format key 2, no bloom filters. fn, if not nil, then edits it.
func writeLegacy(t *testing.T, fs vfs.FS, fn func(db *pebble.DB)) {
	t.Helper()
	src, err := pebble.Open("db", &pebble.Options{FS: fs, Comparer: comparer, FormatMajorVersion: pebbleFormat, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := pebble.Open("legacy", &pebble.Options{FS: fs, FormatMajorVersion: pebbleFormat, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := copyKeys(src, dst); err != nil {
		t.Fatal(err)
	}
	if err := dst.Set(keyFormat, binary.AppendUvarint(nil, 2), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// Flush, so that sstables (not only the WAL) carry the old comparer.
	if err := dst.Flush(); err != nil {
		t.Fatal(err)
	}
	if fn != nil {
		fn(dst)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.RemoveAll("db"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename("legacy", "db"); err != nil {
		t.Fatal(err)
	}
}

// writeLegacyRaw opens a legacy directory with Pebble alone and applies fn.
func writeLegacyRaw(t *testing.T, fs vfs.FS, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, FormatMajorVersion: pebbleFormat, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// history writes a few revisions (creations, a rewrite, a deletion, an
// expiring relationship, a schema) and returns the answers at each.
func history(t *testing.T, s *Store) (head store.Revision, answers map[store.Revision][]string) {
	t.Helper()
	answers = map[store.Revision][]string{}
	var revs []store.Revision
	revs = append(revs, touch(t, s, "doc:1#viewer@user:a", "doc:2#viewer@group:g#member", "group:g#member@user:b"))
	revs = append(revs, touch(t, s, "doc:1#viewer@user:a[expiration:2100-01-01T00:00:00Z]", "doc:3#parent@folder:f"))
	revs = append(revs, del(t, s, "doc:2#viewer@group:g#member"))
	if _, err := s.Update(context.Background(), store.WriteMeta{}, func(ctx context.Context, tx store.Tx) error {
		return tx.WriteSchema(ctx, "definition user {}")
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range revs {
		answers[r] = mustAll(t, s, r)
	}
	h, err := s.HeadRevision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h, answers
}

// TestUpgradeComparer opens a format 2 directory: Open copies it under the
// format 3 comparer, and every revision reads as before.
func TestUpgradeComparer(t *testing.T) {
	e := newEnv()
	s := e.open(t)
	id := s.ID()
	head, answers := history(t, s)
	s.Close()
	writeLegacy(t, e.fs, nil)
	// The legacy directory is what an old binary left: this binary's
	// comparer cannot open it as it is.
	if _, err := pebble.Open("db", &pebble.Options{FS: e.fs, Comparer: comparer, Logger: pebbleLogger{quietLogger()}}); err == nil || !strings.Contains(err.Error(), "comparer") {
		t.Fatalf("opening the legacy directory with the format 3 comparer: %v, want a comparer mismatch", err)
	}

	s = e.open(t)
	defer s.Close()
	if got, err := s.getUvarint(keyFormat); err != nil || got != formatVersion {
		t.Errorf("format after the upgrade = %d (%v), want %d", got, err, formatVersion)
	}
	if name, err := dirComparer("db", e.fs); err != nil || name != comparerName {
		t.Errorf("comparer after the upgrade = %q (%v), want %q", name, err, comparerName)
	}
	if s.ID() != id {
		t.Errorf("store ID %q after the upgrade, want %q", s.ID(), id)
	}
	if h, _ := s.HeadRevision(context.Background()); h != head {
		t.Errorf("head %d after the upgrade, want %d", h, head)
	}
	for rev, want := range answers {
		if got := mustAll(t, s, rev); !slices.Equal(got, want) {
			t.Errorf("at %d after the upgrade: %q, want %q", rev, got, want)
		}
	}
	for _, p := range []string{"db" + upgradeSuffix, "db" + oldSuffix} {
		if exists(e.fs, p) {
			t.Errorf("%s left behind", p)
		}
	}
	if r := touch(t, s, "doc:9#viewer@user:z"); r != head+1 {
		t.Errorf("first write after the upgrade at %d, want %d", r, head+1)
	}
}

// TestUpgradeInterrupted resumes from each state a crash during the
// upgrade can leave.
func TestUpgradeInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, e *env)
	}{
		{"partial copy beside the old directory", func(t *testing.T, e *env) {
			db, err := pebble.Open("db"+upgradeSuffix, &pebble.Options{FS: e.fs, Comparer: comparer, Logger: pebbleLogger{quietLogger()}})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Set(keyHead, revBytes(1), pebble.Sync) // half a store
			db.Close()
		}},
		{"complete copy, old directory moved aside", func(t *testing.T, e *env) {
			if _, err := copyUpgrade("db", "db"+upgradeSuffix, e.opts()); err != nil {
				t.Fatal(err)
			}
			if err := e.fs.Rename("db", "db"+oldSuffix); err != nil {
				t.Fatal(err)
			}
		}},
		{"swapped, old directory not yet removed", func(t *testing.T, e *env) {
			if _, err := copyUpgrade("db", "db"+upgradeSuffix, e.opts()); err != nil {
				t.Fatal(err)
			}
			if err := e.fs.Rename("db", "db"+oldSuffix); err != nil {
				t.Fatal(err)
			}
			if err := e.fs.Rename("db"+upgradeSuffix, "db"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			s := e.open(t)
			_, answers := history(t, s)
			s.Close()
			writeLegacy(t, e.fs, nil)
			tc.crash(t, e)
			s = e.open(t)
			defer s.Close()
			for rev, want := range answers {
				if got := mustAll(t, s, rev); !slices.Equal(got, want) {
					t.Errorf("at %d: %q, want %q", rev, got, want)
				}
			}
			for _, p := range []string{"db" + upgradeSuffix, "db" + oldSuffix} {
				if exists(e.fs, p) {
					t.Errorf("%s left behind", p)
				}
			}
		})
	}
}

// TestBloomFilterPointReads checks that a point read of an absent tuple in
// flushed data is answered by the bloom filters over tuple keys, without
// a data block, and that present tuples are still found at every revision.
func TestBloomFilterPointReads(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	s := e.open(t)
	defer s.Close()
	r1 := touch(t, s, "doc:1#viewer@user:a", "doc:2#viewer@user:b")
	r2 := touch(t, s, "doc:1#viewer@user:a[expiration:2100-01-01T00:00:00Z]")
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	point := func(rev store.Revision, rel string) []string {
		t.Helper()
		k := mustRel(t, rel).Key()
		rd, err := s.Snapshot(ctx, rev)
		if err != nil {
			t.Fatal(err)
		}
		f := tuple.Filter{ResourceType: k.Resource.Type, ResourceID: k.Resource.ID, Relation: k.Relation,
			Subject: &tuple.SubjectFilter{Type: k.Subject.Type, ID: k.Subject.ID, Relation: tuple.Ellipsis}}
		var out []string
		for r, err := range rd.QueryRelationships(ctx, f, store.QueryOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.String())
		}
		return out
	}
	before := s.db.Metrics().Filter.Hits
	for i := range 20 {
		if got := point(r2, "doc:1#viewer@user:x"+string(rune('a'+i))); got != nil {
			t.Fatalf("absent tuple read as %q", got)
		}
	}
	if hits := s.db.Metrics().Filter.Hits - before; hits < 15 {
		t.Errorf("%d bloom filter hits for 20 absent tuples, want most of them", hits)
	}
	if got := point(r1, "doc:1#viewer@user:a"); !slices.Equal(got, []string{"doc:1#viewer@user:a"}) {
		t.Errorf("at %d: %q", r1, got)
	}
	if got := point(r2, "doc:1#viewer@user:a"); !slices.Equal(got, []string{"doc:1#viewer@user:a[expiration:2100-01-01T00:00:00Z]"}) {
		t.Errorf("at %d: %q", r2, got)
	}
}

// TestSplitKey checks the comparer's split against the key layout: index
// version keys split before their revision, everything else not at all,
// and bytewise order equals the order by (prefix, suffix) on the keys a
// store writes and seeks to.
func TestSplitKey(t *testing.T) {
	k := mustRel(t, "doc:1#viewer@group:g#member").Key()
	fwd := forwardTupleKey(nil, k)
	rev := reverseTupleKey(nil, k)
	for _, tc := range []struct {
		key  []byte
		want int
	}{
		{appendRev(slices.Clone(fwd), 7), len(fwd)},
		{appendRev(slices.Clone(rev), 1<<40), len(rev)},
		{appendRev(slices.Clone(fwd), 0), len(fwd)}, // ^0: suffix of 0xff
		{fwd, len(fwd)},
		{appendRev(append([]byte{tagNested}, fwd[1:]...), 9), len(fwd)},
		{prefixOnly(forwardPrefix(tuple.Filter{ResourceType: "doc", ResourceID: "1"})), -1},
		{prefixEnd(fwd), -1},
		{keyHead, -1},
		{schemaKey(5), -1},
		{changelogKey(5, 0), -1},
	} {
		want := tc.want
		if want < 0 {
			want = len(tc.key)
		}
		if got := splitKey(tc.key); got != want {
			t.Errorf("splitKey(%q) = %d, want %d", tc.key, got, want)
		}
	}
	// Orders agree on a sample of stored and seek keys.
	var keys [][]byte
	for _, r := range []string{"doc:1#viewer@user:a", "doc:1#viewer@user:ab", "doc:1#viewer@group:g#member", "doc:10#viewer@user:a", "d:1#v@u:a"} {
		k := mustRel(t, r).Key()
		for _, tk := range [][]byte{forwardTupleKey(nil, k), reverseTupleKey(nil, k)} {
			keys = append(keys, tk, prefixEnd(tk), tk[:len(tk)-1])
			for _, rv := range []store.Revision{0, 1, 255, 256, 1 << 32} {
				keys = append(keys, appendRev(slices.Clone(tk), rv))
			}
		}
	}
	keys = append(keys, prefixOnly(forwardPrefix(tuple.Filter{ResourceType: "doc", ResourceID: "1", Relation: "viewer"})), keyFormat, schemaKey(3))
	for _, a := range keys {
		for _, b := range keys {
			if got, want := splitCompare(a, b), comparer.Compare(a, b); got != want {
				t.Errorf("order of %q and %q: by prefix and suffix %d, bytewise %d", a, b, got, want)
			}
		}
	}
}

func splitCompare(a, b []byte) int {
	na, nb := splitKey(a), splitKey(b)
	if c := strings.Compare(string(a[:na]), string(b[:nb])); c != 0 {
		return c
	}
	return strings.Compare(string(a[na:]), string(b[nb:]))
}

func prefixOnly(p []byte, _ bool) []byte { return p }
