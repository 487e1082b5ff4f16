package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestCommitWaitingForStandby writes while the primary's synchronous
// standby is down, so that the commit waits for it, and gives up: the
// write must not be acknowledged, since only the primary has it (a
// failover would lose it). Cancelling the wait, or terminating the
// waiting backend (as resolveCommit does with a transaction in
// progress), makes PostgreSQL commit it locally, so resolveCommit has to
// see it replicated before calling it committed.
func TestCommitWaitingForStandby(t *testing.T) {
	bin := pgtest.Binaries(t)
	ctx := context.Background()
	root := pgtest.ClusterRoot(t)
	primary := pgtest.InitCluster(t, bin, root, "p", 5432)
	pgtest.Exec(t, primary.URI("postgres"), "CREATE DATABASE pemba")
	standby := pgtest.StandbyOf(t, primary, "s", 5433)
	primary.SetSynchronous(t, true)
	primary.WaitSynchronous(t)
	uri := primary.URI("pemba")
	if err := Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	st, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger(), CommitOutcomeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := touchDoc(ctx, st, "before"); err != nil {
		t.Fatal(err)
	}
	if err := standby.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	rev, err := touchDoc(wctx, st, "waiting")
	cancel()
	if err == nil {
		t.Fatalf("a write that only the primary has was acknowledged at revision %d", rev)
	}
	// The commit was sent, so the outcome is unknown: the wait ended
	// with the transaction committed on the primary alone.
	if !errors.Is(err, store.ErrCommitUnknown) {
		t.Errorf("write waiting for the standby: %v, want %v", err, store.ErrCommitUnknown)
	}
	// With the standby back, writes work again.
	standby.Start(t)
	primary.WaitSynchronous(t)
	if _, err := touchDoc(ctx, st, "after"); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	snap, err := st.Snapshot(ctx, mustHead(t, st))
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range snap.QueryRelationships(ctx, tuple.Filter{ResourceType: "doc"}, store.QueryOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		got[r.Resource.ID] = true
	}
	if !got["before"] || !got["after"] {
		t.Errorf("documents after the standby returned: %v, want before and after (and waiting or not)", got)
	}
}

func mustHead(t *testing.T, st *Store) store.Revision {
	t.Helper()
	h, err := st.HeadRevision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}
