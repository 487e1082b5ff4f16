package authzen_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/api/authzen"
	"github.com/pemba-authz/pemba/engine"
)

// The search endpoints against a brute-force reference: every result of
// a search, walked page by page at several page sizes, is exactly the set
// of candidates that an evaluation permits (§8.1), each page obeys §8.2
// (count, limit, a non-empty next_token on every page but the last, ""
// on the last), and pages never repeat or skip a result.

const pagingSchema = `
caveat gold(tier string) { tier == "gold" }
definition user {}
definition group {
  relation member: user
}
definition doc {
  relation viewer: user | group#member | user with gold
  relation banned: user
  permission read = viewer - banned
}
definition folder {
  relation r0: user
  relation r1: user
  relation r2: user
  relation r3: user
  relation r4: user
  relation r5: user
  relation r6: user
  permission p0 = r0
  permission p1 = r1 + r0
  permission p2 = r2
  permission p3 = r3 & r0
  permission p4 = r4
  permission p5 = r5 - r1
  permission p6 = r6
  permission p7 = r0 + r1 + r2
}`

// pagingWorld is a random but fixed world: users u00..u24, groups, docs
// d00..d29 (with caveated grants that searches must leave out), folders
// f0..f4.
func pagingWorld(t *testing.T) (*authzen.Handler, []string, []string, []string) {
	rng := rand.New(rand.NewPCG(16, 1))
	var users, docs, folders []string
	for i := range 25 {
		users = append(users, fmt.Sprintf("u%02d", i))
	}
	for i := range 30 {
		docs = append(docs, fmt.Sprintf("d%02d", i))
	}
	for i := range 5 {
		folders = append(folders, fmt.Sprintf("f%d", i))
	}
	var rels strings.Builder
	for g := range 4 {
		for _, u := range users {
			if rng.IntN(4) == 0 {
				fmt.Fprintf(&rels, "group:g%d#member@user:%s\n", g, u)
			}
		}
	}
	for _, d := range docs {
		for _, u := range users {
			switch rng.IntN(8) {
			case 0:
				fmt.Fprintf(&rels, "doc:%s#viewer@user:%s\n", d, u)
			case 1:
				fmt.Fprintf(&rels, "doc:%s#viewer@user:%s[gold]\n", d, u)
			case 2:
				fmt.Fprintf(&rels, "doc:%s#banned@user:%s\n", d, u)
			}
		}
		if g := rng.IntN(6); g < 4 {
			fmt.Fprintf(&rels, "doc:%s#viewer@group:g%d#member\n", d, g)
		}
	}
	for _, f := range folders {
		for _, u := range users {
			for r := range 7 {
				if rng.IntN(3) == 0 {
					fmt.Fprintf(&rels, "folder:%s#r%d@user:%s\n", f, r, u)
				}
			}
		}
	}
	eng := newWorld(t, pagingSchema, rels.String())
	return newHandler(t, eng, authzen.Options{PageSize: 8}), users, docs, folders
}

// searchPage is a search response.
type searchPage struct {
	Page struct {
		NextToken *string `json:"next_token"`
		Count     *int    `json:"count"`
	} `json:"page"`
	Results []struct {
		Type       string         `json:"type"`
		ID         string         `json:"id"`
		Name       string         `json:"name"`
		Properties map[string]any `json:"properties"`
	} `json:"results"`
}

// walk runs a search to its end with page.limit limit (0: none) and
// returns the results' ids (names, for actions), checking every page.
func walk(t *testing.T, h http.Handler, path string, req obj, limit, pageSize int) []string {
	t.Helper()
	var out []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("%s %v: more than 100 pages", path, req)
		}
		page := obj{}
		if limit > 0 {
			page["limit"] = limit
		}
		if token != "" {
			page["token"] = token
		}
		r := obj{"page": page}
		for k, v := range req {
			r[k] = v
		}
		var resp searchPage
		callJSON(t, h, path, r, &resp)
		if resp.Page.NextToken == nil || resp.Page.Count == nil {
			t.Fatalf("%s %v: a page without next_token or count", path, req)
		}
		n := len(resp.Results)
		if *resp.Page.Count != n {
			t.Errorf("%s %v: page.count %d, %d results", path, req, *resp.Page.Count, n)
		}
		want := pageSize
		if limit > 0 {
			want = min(limit, pageSize)
		}
		token = *resp.Page.NextToken
		if n > want || (token != "" && n != want) {
			t.Errorf("%s %v limit %d: a page of %d results (next_token %q), want %d", path, req, limit, n, token, want)
		}
		for _, r := range resp.Results {
			if r.Name != "" {
				out = append(out, r.Name)
			} else {
				out = append(out, r.ID)
			}
		}
		if token == "" {
			return out
		}
	}
}

func permits(t *testing.T, h http.Handler, s, a, r obj) bool {
	t.Helper()
	var d struct {
		Decision bool `json:"decision"`
	}
	callJSON(t, h, authzen.EvaluationPath, obj{"subject": s, "action": a, "resource": r}, &d)
	return d.Decision
}

func TestSearchPaging(t *testing.T) {
	h, users, docs, folders := pagingWorld(t)
	limits := []int{0, 1, 2, 3, 7, 8, 100}
	nonEmpty := 0
	for _, d := range docs[:12] {
		var want []string
		for _, u := range users {
			if permits(t, h, subj("user", u), act("read"), res("doc", d)) {
				want = append(want, u)
			}
		}
		nonEmpty += min(len(want), 1)
		for _, l := range limits {
			got := walk(t, h, authzen.SearchSubjectPath, obj{"subject": obj{"type": "user"}, "action": act("read"), "resource": res("doc", d)}, l, 8)
			if !slices.Equal(got, want) {
				t.Errorf("subject search doc:%s, limit %d: %v, want %v", d, l, got, want)
			}
		}
	}
	for _, u := range users[:10] {
		var want []string
		for _, d := range docs {
			if permits(t, h, subj("user", u), act("read"), res("doc", d)) {
				want = append(want, d)
			}
		}
		nonEmpty += min(len(want), 1)
		for _, l := range limits {
			got := walk(t, h, authzen.SearchResourcePath, obj{"subject": subj("user", u), "action": act("read"), "resource": obj{"type": "doc"}}, l, 8)
			if !slices.Equal(got, want) {
				t.Errorf("resource search user:%s, limit %d: %v, want %v", u, l, got, want)
			}
		}
	}
	for _, f := range folders {
		for _, u := range users[:6] {
			var want []string
			for p := range 8 {
				name := fmt.Sprintf("p%d", p)
				if permits(t, h, subj("user", u), act(name), res("folder", f)) {
					want = append(want, name)
				}
			}
			nonEmpty += min(len(want), 1)
			for _, l := range limits {
				got := walk(t, h, authzen.SearchActionPath, obj{"subject": subj("user", u), "resource": res("folder", f)}, l, 8)
				if !slices.Equal(got, want) {
					t.Errorf("action search user:%s folder:%s, limit %d: %v, want %v", u, f, l, got, want)
				}
			}
		}
	}
	// The world must not be so sparse that empty lists agree trivially.
	if nonEmpty < 40 {
		t.Errorf("only %d of 52 searches found anything", nonEmpty)
	}
}

// The pages of one search are answered at the revision of its first
// page: a grant written between pages shows up only in a new search.
func TestSearchPagingRevision(t *testing.T) {
	// A negative quantum: a new search sees every write at once.
	eng := newWorldWith(t, engine.Options{Quantum: -1}, pagingSchema, `
doc:a#viewer@user:u
doc:b#viewer@user:u
doc:c#viewer@user:u
folder:f#r0@user:u
`)
	h := newHandler(t, eng, authzen.Options{})
	for _, c := range []struct {
		path, write string
		req         obj
		first, rest []string
		after       []string
	}{
		{authzen.SearchResourcePath, "doc:z#viewer@user:u",
			obj{"subject": subj("user", "u"), "action": act("read"), "resource": obj{"type": "doc"}},
			[]string{"a"}, []string{"b", "c"}, []string{"a", "b", "c", "z"}},
		{authzen.SearchSubjectPath, "doc:a#viewer@user:w",
			obj{"subject": obj{"type": "user"}, "action": act("read"), "resource": res("doc", "a")},
			[]string{"u"}, nil, []string{"u", "w"}},
		{authzen.SearchActionPath, "folder:f#r6@user:u",
			obj{"subject": subj("user", "u"), "resource": res("folder", "f")},
			[]string{"p0"}, []string{"p1", "p7"}, []string{"p0", "p1", "p6", "p7"}},
	} {
		first := obj{"page": obj{"limit": 1}}
		for k, v := range c.req {
			first[k] = v
		}
		var p1 searchPage
		callJSON(t, h, c.path, first, &p1)
		var got []string
		for _, r := range p1.Results {
			got = append(got, r.ID+r.Name)
		}
		if !slices.Equal(got, c.first) {
			t.Fatalf("%s: first page %v, want %v", c.path, got, c.first)
		}
		importRels(t, eng, c.write)
		token := *p1.Page.NextToken
		var rest []string
		for token != "" {
			next := obj{"page": obj{"token": token}}
			for k, v := range c.req {
				next[k] = v
			}
			var p searchPage
			callJSON(t, h, c.path, next, &p)
			for _, r := range p.Results {
				rest = append(rest, r.ID+r.Name)
			}
			token = *p.Page.NextToken
		}
		if !slices.Equal(rest, c.rest) {
			t.Errorf("%s: after writing %s, the later pages hold %v, want %v (the first page's revision)", c.path, c.write, rest, c.rest)
		}
		if got := walk(t, h, c.path, c.req, 0, authzen.DefaultPageSize); !slices.Equal(got, c.after) {
			t.Errorf("%s: a new search finds %v, want %v", c.path, got, c.after)
		}
	}
}

// A wildcard grant is the result "*", with the subjects it excludes.
func TestSearchWildcard(t *testing.T) {
	eng := newWorld(t, `
definition user {}
definition doc {
  relation viewer: user | user:*
  relation banned: user
  permission read = viewer - banned
}`, `
doc:public#viewer@user:*
doc:public#banned@user:mallory
doc:public#viewer@user:alice
`)
	h := newHandler(t, eng, authzen.Options{})
	var p searchPage
	callJSON(t, h, authzen.SearchSubjectPath, obj{"subject": obj{"type": "user"}, "action": act("read"), "resource": res("doc", "public")}, &p)
	var got []string
	for _, r := range p.Results {
		got = append(got, fmt.Sprintf("%s %v", r.ID, r.Properties["excluded_ids"]))
	}
	want := []string{"* [mallory]", "alice <nil>"}
	if !slices.Equal(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	// §8.1: the results, evaluated, permit: the wildcard grants anyone
	// but mallory.
	if !permits(t, h, subj("user", "anyone"), act("read"), res("doc", "public")) || permits(t, h, subj("user", "mallory"), act("read"), res("doc", "public")) {
		t.Error("evaluations disagree with the wildcard result")
	}
}
