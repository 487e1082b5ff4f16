package pgstore

import (
	"context"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/storetest"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// testReplicaEnv names a hot standby streaming from the test server.
const testReplicaEnv = "PEMBA_TEST_POSTGRES_REPLICA_URI"

func replicaURI(t *testing.T) string {
	t.Helper()
	uri := os.Getenv(testReplicaEnv)
	if uri != "" {
		return uri
	}
	const how = testReplicaEnv + " is not set: it names a hot standby of " + testServerEnv +
		" (pg_basebackup -R from it, started on another port); scripts/with-postgres.sh go test ./... starts one, as .ci/run does"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return ""
}

// waitReplay waits until the replica has replayed everything the primary
// has written so far (its insert position: with synchronous_commit off a
// commit may not have reached the write position yet). It polls:
// streaming replication has no event to wait for in PostgreSQL 15.
func waitReplay(t *testing.T, primary, replica *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lsn string
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var done bool
		if err := replica.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done); err != nil {
			t.Fatalf("waiting for the replica to replay %s: %v", lsn, err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica did not replay %s", lsn)
		case <-tick.C:
		}
	}
}

// TestReadReplica checks that a snapshot reads from the replica only when
// the replica has replayed its revision, from the primary otherwise, and
// falls back to the primary when the replica fails.
func TestReadReplica(t *testing.T) {
	ctx := context.Background()
	replicaServer := replicaURI(t)
	uri, name := newNamedDatabase(t)
	if err := Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	primary, err := pgx.Connect(ctx, serverURI(t))
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(ctx)
	admin, err := pgx.Connect(ctx, replicaServer)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	waitReplay(t, primary, admin)

	repURI := withDatabase(t, replicaServer, name)
	st, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger(), ReadReplicas: []string{repURI}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	rels := storetest.MustParse(t, "doc:1#viewer@user:a", "doc:2#viewer@user:b")
	rev1 := storetest.MustTouch(t, st, rels[0])
	waitReplay(t, primary, admin)
	check := func(what string, rev store.Revision, wantReplica bool, want []tuple.Relationship) {
		t.Helper()
		r := storetest.MustSnapshot(t, st, rev)
		if got := r.(*reader).onReplica; got != wantReplica {
			t.Errorf("%s: snapshot at %d on replica = %v, want %v", what, rev, got, wantReplica)
		}
		got, err := storetest.Collect(r.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
		if err != nil || storetest.Format(got) != storetest.Format(want) {
			t.Errorf("%s: at %d got %v (%v), want %v", what, rev, got, err, want)
		}
		checkPowers(t, what, r, rels[1], want)
	}
	check("replayed", rev1, true, rels[:1])

	// Stop replay: the replica keeps serving revision 1 but not 2.
	if _, err := admin.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if _, err := admin.Exec(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()
	rev2 := storetest.MustTouch(t, st, rels[1])
	check("replica behind", rev2, false, rels)
	checkReplicaMetrics(t, st, 1, 1)
	check("old revision while behind", rev1, true, rels[:1])
	resume()
	waitReplay(t, primary, admin)
	check("caught up", rev2, true, rels)
	checkReplicaMetrics(t, st, 1, 0)

	// A failing replica: the same reader's next query runs on the primary.
	r := storetest.MustSnapshot(t, st, rev2)
	st.replicas[0].pool.Close()
	got, err := storetest.Collect(r.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{}))
	if err != nil || storetest.Format(got) != storetest.Format(rels) {
		t.Errorf("after the replica failed: %v (%v), want %v", got, err, rels)
	}
	if text, _, err := r.ReadSchema(ctx); err != nil || text != "" {
		t.Errorf("ReadSchema after the replica failed: %q, %v", text, err)
	}
	r = storetest.MustSnapshot(t, st, rev2)
	st.replicas[0].pool.Close()
	checkPowers(t, "after the replica failed", r, rels[1], rels)

	// A "replica" holding another store is refused.
	other := newDatabase(t)
	if err := Migrate(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, uri, Options{GCInterval: -1, Logger: quietLogger(), ReadReplicas: []string{other}}); !errors.Is(err, ErrNotReplica) {
		t.Errorf("Open with another store as replica: %v, want ErrNotReplica", err)
	}
}

// checkReplicaMetrics scrapes st's collector and checks replica 0's up
// gauge and lag, and that the pools are reported.
func checkReplicaMetrics(t *testing.T, st *Store, up, lag float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(st.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"pemba_postgres_replica_up/0": up, "pemba_postgres_replica_lag_revisions/0": lag}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for _, k := range []string{"pemba_postgres_pool_max_connections/primary", "pemba_postgres_pool_max_connections/replica0"} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
}

// checkPowers checks the read powers of r (store.PointReader,
// store.BatchReader) against want, everything r should see: a point read
// of k's key, and the whole store appended.
func checkPowers(t *testing.T, what string, r store.Reader, k tuple.Relationship, want []tuple.Relationship) {
	t.Helper()
	ctx := context.Background()
	rel, found, err := r.(store.PointReader).ReadRelationship(ctx, k.Key(), time.Time{})
	wantFound := slices.ContainsFunc(want, func(w tuple.Relationship) bool { return w.Key() == k.Key() })
	if err != nil || found != wantFound || (found && rel.String() != k.String()) {
		t.Errorf("%s: ReadRelationship(%s) = %v, found %v, %v; want found %v", what, k.Key(), rel, found, err, wantFound)
	}
	got, err := r.(store.BatchReader).AppendRelationships(ctx, nil, tuple.Filter{}, store.QueryOptions{})
	if err != nil || storetest.Format(got) != storetest.Format(want) {
		t.Errorf("%s: AppendRelationships = %v (%v), want %v", what, got, err, want)
	}
}
