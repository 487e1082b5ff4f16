package eval

import (
	"context"
	"fmt"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
)

// narrowSchema has a relation that takes every kind a check reads twice
// without the narrow read: users, the wildcard, caveated users and
// subject sets.
const narrowSchema = `
caveat small(n int) { n < 10 }

definition user {}

definition group {
	relation member: user
}

definition doc {
	relation viewer: user | user:* | user with small | group#member
	permission view = viewer
}
`

// statsCounter is a queryCounter that passes the store's statistics on.
type statsCounter struct{ queryCounter }

func (c *statsCounter) Statistics() *store.Statistics {
	return c.Reader.(store.StatsReader).Statistics()
}

// TestNarrowRead checks that a check of a relation whose objects hold few
// relationships on average reads the object's relationships once
// (narrowRead) instead of twice, with the answers of the two reads: grants
// by the subject, the wildcard, a caveat and a subject set, expired
// relationships ignored, and an object holding more than the plan reads
// left to the two reads.
func TestNarrowRead(t *testing.T) {
	s := mustCompile(t, narrowSchema)
	lines := []string{
		"doc:star#viewer@user:*",
		"doc:set#viewer@group:g#member",
		"group:g#member@user:bob",
		"doc:both#viewer@user:ann",
		"doc:both#viewer@group:g#member",
		"doc:cav#viewer@user:cat[small]",
		"doc:exp#viewer@user:dan[expiration:2020-01-01T00:00:00Z]",
		"doc:exp#viewer@group:none#member",
		"doc:wide#viewer@group:g#member",
	}
	for i := range narrowLimit { // doc:wide holds more than the plan reads
		lines = append(lines, fmt.Sprintf("doc:wide#viewer@user:u%d", i))
	}
	for i := range 20 { // narrow on average: 2.2 viewers per document
		lines = append(lines, fmt.Sprintf("doc:n%d#viewer@user:x", i))
	}
	rd := load(t, mustParse(t, lines...))
	narrow := New(s, Options{Concurrency: 1, Plans: &PlanCounters{}})
	twoReads := New(s, Options{Concurrency: 1})
	twoReads.narrowFanout = 0
	tests := []struct {
		check  string
		ctx    map[string]any
		want   Permissionship
		narrow bool // read once
	}{
		{"doc:star#view@user:ann", nil, HasPermission, true},
		{"doc:star#view@user:*", nil, HasPermission, true},
		{"doc:set#view@user:bob", nil, HasPermission, true},
		{"doc:set#view@user:ann", nil, NoPermission, true},
		{"doc:both#view@user:ann", nil, HasPermission, true},
		{"doc:both#view@user:bob", nil, HasPermission, true},
		{"doc:both#view@user:cat", nil, NoPermission, true},
		{"doc:cav#view@user:cat", nil, ConditionalPermission, true},
		{"doc:cav#view@user:cat", map[string]any{"n": 3}, HasPermission, true},
		{"doc:cav#view@user:cat", map[string]any{"n": 30}, NoPermission, true},
		{"doc:exp#view@user:dan", nil, NoPermission, true},
		{"doc:none#view@user:ann", nil, NoPermission, true},
		{"doc:wide#view@user:bob", nil, HasPermission, false},
		{"doc:wide#view@user:u3", nil, HasPermission, false},
		{"doc:wide#view@user:ann", nil, NoPermission, false},
	}
	var saved int64
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.check, tt.ctx), func(t *testing.T) {
			before := narrow.opts.Plans.Counts()[PlanNarrowRead.String()]
			nr, tr := &statsCounter{queryCounter{Reader: rd}}, &statsCounter{queryCounter{Reader: rd}}
			got, err := narrow.Check(context.Background(), Params{Reader: nr, Now: testNow, Context: tt.ctx}, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := twoReads.Check(context.Background(), Params{Reader: tr, Now: testNow, Context: tt.ctx}, parseCheck(t, tt.check))
			if err != nil {
				t.Fatal(err)
			}
			if got.Permissionship != tt.want || ref.Permissionship != tt.want {
				t.Errorf("narrow read %v, two reads %v, want %v", got.Permissionship, ref.Permissionship, tt.want)
			}
			ran := narrow.opts.Plans.Counts()[PlanNarrowRead.String()] - before
			if (ran > 0) != tt.narrow {
				t.Errorf("%d narrow reads, want narrow %v", ran, tt.narrow)
			}
			// The narrow read replaces the point reads (one for the
			// subject, one for the wildcard) and the subject sets' scan;
			// an object past the plan's limit costs one read more.
			switch n, m := nr.queries.Load(), tr.queries.Load(); {
			case tt.narrow && n > m:
				t.Errorf("%d queries with the narrow read, %d without: want no more", n, m)
			case !tt.narrow && n != m+1:
				t.Errorf("%d queries past the narrow read's limit, %d without: want one more", n, m)
			default:
				saved += m - n
			}
		})
	}
	if saved < int64(len(tests)-3) {
		t.Errorf("the narrow reads saved %d queries in %d checks", saved, len(tests)-3)
	}
}
