package eval

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// testCluster is nodes evaluators, each with its own cache, that route
// permissions to each other in-process by a hash of the subproblem, the
// way api/cluster does over gRPC. Every third owner "is down" for a
// subproblem chosen by hash, so that the fallback path is exercised too.
type testCluster struct {
	nodes   []*Evaluator
	reader  store.Reader
	remote  atomic.Int64 // dispatches answered by a peer
	refused atomic.Int64 // dispatches a peer failed
}

type testRouter struct {
	c    *testCluster
	self int
}

type testPeer struct {
	c    *testCluster
	node int
	down bool
}

func newTestCluster(s *schema.Schema, nodes int, rd store.Reader) *testCluster {
	return newTestClusterDepth(s, nodes, rd, 0)
}

// newTestClusterDepth is newTestCluster with every node at maxDepth.
func newTestClusterDepth(s *schema.Schema, nodes int, rd store.Reader, maxDepth int) *testCluster {
	c := &testCluster{reader: rd}
	for i := range nodes {
		c.nodes = append(c.nodes, New(s, Options{MaxDepth: maxDepth, Concurrency: 1 + i%2*3, Cache: NewCache(1 << 20), Router: testRouter{c: c, self: i}}))
	}
	return c
}

func (r testRouter) Route(typ, id, rel string) Peer {
	h := fnv.New64a()
	h.Write([]byte(typ + ":" + id + "#" + rel))
	sum := h.Sum64()
	owner := int(sum % uint64(len(r.c.nodes)))
	if owner == r.self {
		return nil
	}
	return &testPeer{c: r.c, node: owner, down: sum%3 == 0}
}

func (p *testPeer) DispatchCheck(ctx context.Context, req *DispatchRequest) (*DispatchResponse, error) {
	if p.down {
		p.c.refused.Add(1)
		return nil, errors.New("peer down")
	}
	// The request crosses a process boundary: share nothing.
	cp := *req
	cp.Path = slices.Clone(req.Path)
	resp, err := p.c.nodes[p.node].DispatchCheck(ctx, Params{Reader: p.c.reader}, &cp)
	if err == nil {
		p.c.remote.Add(1)
	}
	return resp, err
}

func TestClusterRoutesAndAgrees(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation parent: doc
	relation viewer: user | group#member
	relation banned: user
	permission view = (viewer + parent->view) - banned
}`)
	rels := mustParse(t,
		"group:a#member@user:ann",
		"group:b#member@group:a#member",
		"group:a#member@group:b#member", // a cycle between groups
		"doc:root#viewer@group:b#member",
		"doc:mid#parent@doc:root",
		"doc:leaf#parent@doc:mid",
		"doc:leaf#banned@user:bob",
		"doc:mid#viewer@user:bob",
		"doc:loop1#parent@doc:loop2",
		"doc:loop2#parent@doc:loop1", // a cycle between documents
	)
	rd := load(t, rels)
	single := New(s, Options{Concurrency: 1})
	c := newTestCluster(s, 3, rd)
	ctx := context.Background()
	p := Params{Reader: rd, Now: testNow}
	docs := []string{"root", "mid", "leaf", "loop1", "loop2", "none"}
	users := []string{"ann", "bob", "carl"}
	for pass := range 2 { // the second pass is answered from the owners' caches
		for _, d := range docs {
			for _, u := range users {
				req := CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: d}, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: u}}
				want, err := single.Check(ctx, p, req)
				if err != nil {
					t.Fatal(err)
				}
				for i, n := range c.nodes {
					got, err := n.Check(ctx, p, req)
					if err != nil || got.Permissionship != want.Permissionship {
						t.Errorf("pass %d node %d: Check(doc:%s#view@user:%s) = %v (%v), single node %v", pass, i, d, u, got.Permissionship, err, want.Permissionship)
					}
				}
			}
		}
	}
	if c.remote.Load() == 0 || c.refused.Load() == 0 {
		t.Errorf("remote dispatches %d, refused %d: want both exercised", c.remote.Load(), c.refused.Load())
	}
}

func TestDispatchCheckRejectsBadRequests(t *testing.T) {
	s := mustCompile(t, `
definition user {}
definition doc {
	relation viewer: user
	permission view = viewer
}`)
	rd := load(t, mustParse(t, "doc:a#viewer@user:ann"))
	e := New(s, Options{MaxDepth: 5})
	ctx := context.Background()
	good := DispatchRequest{Revision: rd.Revision(), Now: testNow, Resource: tuple.ObjectRef{Type: "doc", ID: "a"}, Relation: "view", Subject: tuple.SubjectRef{Type: "user", ID: "ann"}}
	resp, err := e.DispatchCheck(ctx, Params{Reader: rd}, &good)
	if err != nil || resp.Permissionship != HasPermission || resp.Depth != 2 || resp.Dispatches != 2 {
		t.Fatalf("good dispatch = %+v, %v; want HAS_PERMISSION at depth 2 after 2 dispatches", resp, err)
	}
	tests := []struct {
		name string
		mod  func(*DispatchRequest)
		want error
	}{
		{"other revision", func(r *DispatchRequest) { r.Revision++ }, ErrInvalidRequest},
		{"unknown type", func(r *DispatchRequest) { r.Resource.Type = "folder" }, ErrUnknownDefinition},
		{"unknown relation", func(r *DispatchRequest) { r.Relation = "edit" }, ErrUnknownRelation},
		{"wildcard resource", func(r *DispatchRequest) { r.Resource.ID = "*" }, ErrInvalidRequest},
		{"bad subject", func(r *DispatchRequest) { r.Subject.ID = "" }, ErrInvalidRequest},
		{"bad path step", func(r *DispatchRequest) { r.Path = []PathStep{{"doc", "b", "nope"}} }, ErrUnknownRelation},
		{"path too long", func(r *DispatchRequest) { r.Path = make([]PathStep, 5) }, ErrInvalidRequest},
		{"path at the limit", func(r *DispatchRequest) {
			r.Path = slices.Repeat([]PathStep{{"doc", "b", "view"}}, 4)
		}, ErrMaxDepth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			tc.mod(&req)
			_, err := e.DispatchCheck(ctx, Params{Reader: rd}, &req)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
