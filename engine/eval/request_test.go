package eval

import (
	"context"
	"reflect"
	"testing"
)

// TestPooledRequests checks that a pooled request comes back from
// releaseRequest empty (memo, slabs, root statistics, everything of the
// check before) and that checks answered on reused requests agree with
// checks answered on fresh ones, in both orders, including a check that
// fails on the depth limit between them.
func TestPooledRequests(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}
definition document {
	relation viewer: user | group#member
	relation banned: user
	permission view = viewer - banned
}`)
	r := load(t, mustParse(t,
		"group:a#member@group:b#member",
		"group:b#member@group:c#member",
		"group:c#member@user:ann",
		"group:c#member@group:a#member",
		"document:d#viewer@group:a#member",
		"document:d#banned@user:bob",
		"document:d#viewer@user:bob",
	))
	ctx := context.Background()
	type q struct{ res, perm, sub string }
	qs := []q{
		{"document:d", "view", "user:ann"},
		{"document:d", "view", "user:bob"},
		{"document:d", "view", "user:cat"},
		{"group:a", "member", "user:ann"},
		{"document:d", "viewer", "group:c#member"},
	}
	for _, limit := range []int{2, 50} {
		fresh := New(s, Options{MaxDepth: limit, Concurrency: 1})
		pooled := New(s, Options{MaxDepth: limit, Concurrency: 1})
		failed := 0
		for round := range 3 {
			for _, x := range qs {
				req := CheckRequest{Resource: mustObject(t, x.res), Permission: x.perm, Subject: mustSubject(t, x.sub)}
				p := Params{Reader: r, Now: testNow}
				rq, err := fresh.newRequest(p)
				if err != nil {
					t.Fatal(err)
				}
				want, wantErr := rq.checkRoot(ctx, req)
				rq.done()
				got, gotErr := pooled.Check(ctx, p, req)
				if gotErr != nil {
					failed++
				}
				if !reflect.DeepEqual(got, want) || (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
					t.Errorf("depth %d, round %d, %v: pooled %+v, %v; fresh %+v, %v", limit, round, x, got, gotErr, want, wantErr)
				}
			}
		}
		if (failed > 0) != (limit == 2) {
			t.Errorf("depth %d: %d checks failed; want failures only at depth 2", limit, failed)
		}
		rq, err := pooled.takeRequest(Params{Reader: r, Now: testNow}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rq.memo) != 0 || len(rq.calls) != 0 || len(rq.frames) != 0 || rq.rootStats.dispatches.Load() != 0 || rq.revs != nil || !rq.pooled {
			t.Errorf("depth %d: a reused request holds memo %d, calls %d, frames %d, dispatches %d, revs %v, pooled %v",
				limit, len(rq.memo), len(rq.calls), len(rq.frames), rq.rootStats.dispatches.Load(), rq.revs, rq.pooled)
		}
		pooled.releaseRequest(rq)
	}
}
