package pebblestore

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/storetest"
)

// TestAuditRestart: entries survive a restart, and the chain goes on from
// the newest one.
func TestAuditRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *Store {
		s, err := Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	rels := storetest.MustParse(t, "doc:1#viewer@user:a", "doc:2#viewer@user:b", "doc:3#viewer@user:c")
	for _, r := range rels[:2] {
		storetest.MustTouch(t, s, r)
	}
	s.Close()
	s = open()
	defer s.Close()
	rev := storetest.MustTouch(t, s, rels[2])
	rep, err := store.VerifyAudit(context.Background(), s)
	if err != nil || rep.Mismatch != nil || rep.Entries != 3 || rep.Head != rev {
		t.Fatalf("after a restart: %+v (mismatch %+v), %v; want 3 verified entries", rep, rep.Mismatch, err)
	}
}

// TestAuditUpgradeFromFormat3: a format 3 store (no audit log) opens as
// format 4 with its log starting after its head.
func TestAuditUpgradeFromFormat3(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rels := storetest.MustParse(t, "doc:1#viewer@user:a", "doc:2#viewer@user:b", "doc:3#viewer@user:c")
	storetest.MustTouch(t, s, rels[0])
	storetest.MustTouch(t, s, rels[1])
	// Make it what format 3 wrote: no audit keys, no anchor.
	b := s.db.NewBatch()
	_ = b.DeleteRange([]byte{tagAudit}, []byte{tagAudit + 1}, nil)
	_ = b.Delete(keyAuditAnchor, nil)
	_ = b.Set(keyFormat, binary.AppendUvarint(nil, 3), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	s.Close()

	s, err = Open(dir, Options{GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if f, err := s.getUvarint(keyFormat); err != nil || f != formatVersion {
		t.Errorf("format after opening = %d (%v), want %d", f, err, formatVersion)
	}
	rep, err := store.VerifyAudit(context.Background(), s)
	if err != nil || rep.Mismatch != nil || rep.Anchor != (store.AuditAnchor{Revision: 2}) || rep.Entries != 0 {
		t.Fatalf("upgraded: %+v, %v; want an empty log anchored at revision 2", rep, err)
	}
	rev := storetest.MustTouch(t, s, rels[2])
	rep, err = store.VerifyAudit(context.Background(), s)
	if err != nil || rep.Mismatch != nil || rep.Entries != 1 || rep.Head != rev {
		t.Fatalf("after a write: %+v, %v; want one verified entry", rep, err)
	}
}
