package eval

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/pemba-authz/pemba/engine/tuple"
)

const constructsSchema = `
use expiration

caveat flag(on bool) { on }
caveat under(n int, limit int) { n < limit }

definition user {}

definition group {
	relation member: user | user:* | group#member | user with flag | user with expiration
	relation banned: user
	permission allowed = member - banned
}

definition folder {
	relation parent: folder
	relation viewer: user | group#member
	relation owner: user
	permission view = viewer + owner + parent->view
	permission every = parent.all(view)
}

definition doc {
	relation folder: folder | folder with under
	relation viewer: user | user:* | group#member | user with flag
	relation editor: user | group#member
	relation banned: user | user:*
	relation approved: user:*
	permission edit = editor
	permission view = viewer + edit + folder->view
	permission view_ok = view & approved
	permission view_unbanned = view - banned
	permission nothing = nil
}
`

func TestCheckConstructs(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t,
		"group:eng#member@user:anne",
		"group:eng#member@group:backend#member",
		"group:backend#member@user:bob",
		"group:backend#member@group:eng#member", // cycle
		"group:all#member@user:*",
		"group:all#banned@user:eve",
		"group:cond#member@user:carl[flag]",
		"group:cond#member@user:dora[flag:{\"on\":true}]",
		"group:cond#member@user:fred[flag:{\"on\":false}]",
		"group:temp#member@user:gina[expiration:2026-06-01T11:00:00Z]",
		"group:temp#member@user:hank[expiration:2026-06-01T13:00:00Z]",
		"folder:root#viewer@user:ivan",
		"folder:sub#parent@folder:root",
		"folder:leaf#parent@folder:sub",
		"folder:two#parent@folder:root",
		"folder:two#parent@folder:other",
		"doc:1#viewer@group:eng#member",
		"doc:1#editor@user:jack",
		"doc:1#folder@folder:leaf",
		"doc:1#banned@user:bob",
		"doc:1#approved@user:*",
		"doc:2#viewer@user:*",
		"doc:2#banned@user:kim",
		"doc:3#viewer@user:lou[flag]",
		"doc:3#folder@folder:root[under:{\"limit\":10}]",
		"doc:4#banned@user:*",
		"doc:4#viewer@user:mia",
	))
	tests := []struct {
		name    string
		check   string // resource#permission@subject
		ctx     map[string]any
		want    Permissionship
		missing []string
	}{
		{"direct", "group:eng#member@user:anne", nil, HasPermission, nil},
		{"direct absent", "group:eng#member@user:zed", nil, NoPermission, nil},
		{"subject set", "group:eng#member@user:bob", nil, HasPermission, nil},
		{"subject set through cycle", "group:backend#member@user:anne", nil, HasPermission, nil},
		{"cycle without member", "group:backend#member@user:nobody", nil, NoPermission, nil},
		{"userset subject named", "doc:1#viewer@group:eng#member", nil, HasPermission, nil},
		{"userset subject nested", "group:eng#member@group:backend#member", nil, HasPermission, nil},
		{"userset contains itself", "group:solo#member@group:solo#member", nil, HasPermission, nil},
		{"wildcard", "group:all#member@user:whoever", nil, HasPermission, nil},
		{"wildcard subject", "group:all#member@user:*", nil, HasPermission, nil},
		{"wildcard subject not matched by concrete", "group:eng#member@user:*", nil, NoPermission, nil},
		{"exclusion removes", "group:all#allowed@user:eve", nil, NoPermission, nil},
		{"exclusion keeps", "group:all#allowed@user:amy", nil, HasPermission, nil},
		{"caveat missing", "group:cond#member@user:carl", nil, ConditionalPermission, []string{"on"}},
		{"caveat from request", "group:cond#member@user:carl", map[string]any{"on": true}, HasPermission, nil},
		{"caveat false from request", "group:cond#member@user:carl", map[string]any{"on": false}, NoPermission, nil},
		{"stored context wins", "group:cond#member@user:dora", map[string]any{"on": false}, HasPermission, nil},
		{"stored false wins", "group:cond#member@user:fred", map[string]any{"on": true}, NoPermission, nil},
		{"expired", "group:temp#member@user:gina", nil, NoPermission, nil},
		{"not yet expired", "group:temp#member@user:hank", nil, HasPermission, nil},
		{"computed", "doc:1#edit@user:jack", nil, HasPermission, nil},
		{"union through computed", "doc:1#view@user:jack", nil, HasPermission, nil},
		{"arrow recursive", "doc:1#view@user:ivan", nil, HasPermission, nil},
		{"arrow miss", "doc:2#view@user:ivan", nil, HasPermission, nil}, // doc:2 has user:*
		{"arrow all holds", "folder:sub#every@user:ivan", nil, HasPermission, nil},
		{"arrow all fails", "folder:two#every@user:ivan", nil, NoPermission, nil},
		{"arrow all empty", "folder:root#every@user:ivan", nil, NoPermission, nil},
		{"intersection", "doc:1#view_ok@user:anne", nil, HasPermission, nil},
		{"intersection fails", "doc:2#view_ok@user:anne", nil, NoPermission, nil},
		{"exclusion of member", "doc:1#view_unbanned@user:bob", nil, NoPermission, nil},
		{"exclusion of other", "doc:1#view_unbanned@user:anne", nil, HasPermission, nil},
		{"wildcard minus one", "doc:2#view_unbanned@user:kim", nil, NoPermission, nil},
		{"wildcard minus one keeps others", "doc:2#view_unbanned@user:lee", nil, HasPermission, nil},
		{"banned wildcard", "doc:4#view_unbanned@user:mia", nil, NoPermission, nil},
		{"conditional viewer", "doc:3#view@user:lou", nil, ConditionalPermission, []string{"on"}},
		{"conditional arrow", "doc:3#view@user:ivan", nil, ConditionalPermission, []string{"n"}},
		{"conditional arrow decided", "doc:3#view@user:ivan", map[string]any{"n": 3}, HasPermission, nil},
		{"conditional arrow false", "doc:3#view@user:ivan", map[string]any{"n": 30}, NoPermission, nil},
		{"conditional union keeps both", "doc:3#view@user:lou", map[string]any{"n": 30}, ConditionalPermission, []string{"on"}},
		{"nil", "doc:1#nothing@user:anne", nil, NoPermission, nil},
	}
	for _, cached := range []bool{false, true} {
		var c *Cache
		if cached {
			c = NewCache(1 << 20)
		}
		e := New(s, Options{Cache: c})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for pass := range 2 { // the second pass may be served by the cache
					res, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow, Context: tt.ctx}, parseCheck(t, tt.check))
					if err != nil {
						t.Fatalf("Check(%s): %v", tt.check, err)
					}
					if res.Permissionship != tt.want || !equalStrings(res.MissingContext, tt.missing) {
						t.Fatalf("pass %d cached=%v: Check(%s) = %v %v, want %v %v", pass, cached, tt.check, res.Permissionship, res.MissingContext, tt.want, tt.missing)
					}
				}
			})
		}
		if cached && c.Stats().Hits == 0 {
			t.Error("second passes never hit the cache")
		}
	}
}

func parseCheck(t testing.TB, s string) CheckRequest {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return CheckRequest{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}
}

func TestCheckErrors(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, "doc:1#viewer@user:anne"))
	e := New(s, Options{})
	tests := []struct {
		name string
		req  CheckRequest
		want error
	}{
		{"unknown type", CheckRequest{Resource: tuple.ObjectRef{Type: "nope", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "a"}}, ErrUnknownDefinition},
		{"unknown permission", CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "nope", Subject: tuple.SubjectRef{Type: "user", ID: "a"}}, ErrUnknownRelation},
		{"unknown subject type", CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "robot", ID: "a"}}, ErrUnknownDefinition},
		{"unknown subject relation", CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "group", ID: "a", Relation: "nope"}}, ErrUnknownRelation},
		{"empty resource id", CheckRequest{Resource: tuple.ObjectRef{Type: "doc"}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "a"}}, ErrInvalidRequest},
		{"wildcard userset", CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "group", ID: "*", Relation: "member"}}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow}, tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := e.Check(context.Background(), Params{}, CheckRequest{}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("nil reader: err = %v", err)
	}
}

func TestCheckCaveatTypeError(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, "doc:3#viewer@user:lou[flag]"))
	e := New(s, Options{})
	_, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow, Context: map[string]any{"on": "yes"}},
		parseCheck(t, "doc:3#view@user:lou"))
	var ce *CaveatError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCaveat) || ce.Caveat != "flag" {
		t.Fatalf("err = %v, want a CaveatError for flag", err)
	}
}

// chain returns relationships nesting group g0 in g1 in ... in gn, with
// user:deep in g0: checking gn#member@user:deep follows n+1 relations.
func chain(n int) []string {
	out := []string{"group:g0#member@user:deep"}
	for i := 1; i <= n; i++ {
		out = append(out, "group:g"+strconv.Itoa(i)+"#member@group:g"+strconv.Itoa(i-1)+"#member")
	}
	return out
}

func TestMaxDepth(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, chain(60)...))
	tests := []struct {
		name     string
		maxDepth int
		group    string
		want     Permissionship
		wantErr  bool
	}{
		{"within limit", 50, "g40", HasPermission, false},
		{"beyond limit", 50, "g60", NoPermission, true},
		{"raised limit", 100, "g60", HasPermission, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, conc := range []int{1, 4} {
				e := New(s, Options{MaxDepth: tt.maxDepth, Concurrency: conc})
				res, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow},
					parseCheck(t, "group:"+tt.group+"#member@user:deep"))
				if tt.wantErr {
					var md *MaxDepthError
					if !errors.As(err, &md) || !errors.Is(err, ErrMaxDepth) {
						t.Fatalf("err = %v, want MaxDepthError", err)
					}
					if md.Depth != tt.maxDepth || len(md.Path) != tt.maxDepth+1 || md.Path[0] != "group:"+tt.group+"#member" {
						t.Fatalf("MaxDepthError = %+v", md)
					}
					return
				}
				if err != nil || res.Permissionship != tt.want {
					t.Fatalf("Check = %v, %v; want %v", res, err, tt.want)
				}
			}
		})
	}
}

func TestCancelled(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, chain(10)...))
	e := New(s, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Check(ctx, Params{Reader: rd, Now: testNow}, parseCheck(t, "group:g10#member@user:deep"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestCheckDispatchStats(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, chain(10)...))
	for _, conc := range []int{1, 4} {
		e := New(s, Options{Concurrency: conc, Cache: NewCache(1 << 20)})
		req := parseCheck(t, "group:g10#member@user:deep")
		res, err := e.Check(context.Background(), Params{Reader: rd, Now: testNow}, req)
		if err != nil || res.Permissionship != HasPermission {
			t.Fatalf("Check = %v, %v", res, err)
		}
		if res.Depth < 1 || res.Dispatches < res.Depth {
			t.Errorf("concurrency %d: Dispatches = %d, Depth = %d", conc, res.Dispatches, res.Depth)
		}
		// The root is now cached: one dispatch, no frame.
		res, err = e.Check(context.Background(), Params{Reader: rd, Now: testNow}, req)
		if err != nil || res.Dispatches != 1 || res.Depth != 0 {
			t.Errorf("concurrency %d: cached Check = %+v, %v; want Dispatches 1, Depth 0", conc, res, err)
		}
	}
}
