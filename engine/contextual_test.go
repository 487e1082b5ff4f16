package engine_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// TestContextualValidation: a contextual relationship is refused exactly
// when a write of it would be, with the same reason, naming it by its
// position; the limits on number, size and repeated keys are
// ErrInvalidRequest.
func TestContextualValidation(t *testing.T) {
	f := newFixture(t, engine.Options{Limits: engine.Limits{MaxContextualRelationships: 3, MaxContextualBytes: 200}})
	rels := func(ss ...string) []tuple.Relationship {
		out := make([]tuple.Relationship, len(ss))
		for i, s := range ss {
			out[i] = mustParse(t, s)
		}
		return out
	}
	tests := []struct {
		name string
		rels []tuple.Relationship
		err  error
		msg  string
	}{
		{"valid", rels("document:d#viewer@user:anne", "group:g#member@group:h#member", `document:d#viewer@user:bob[ip_allowed:{"allowed":["1"]}]`), nil, ""},
		{"unknown type", rels("folder:f#viewer@user:anne"), engine.ErrUnknownDefinition, "contextual relationship 0: "},
		{"unknown relation", rels("document:d#viewer@user:anne", "document:d#owner@user:anne"), engine.ErrUnknownRelation, "contextual relationship 1: "},
		{"permission", rels("document:d#view@user:anne"), engine.ErrWriteToPermission, ""},
		{"subject not allowed", rels("document:d#banned@group:g#member"), engine.ErrSubjectNotAllowed, ""},
		{"caveat required", rels("document:d#conditional@user:anne"), engine.ErrCaveatRequired, ""},
		{"caveat not allowed", rels("document:d#banned@user:anne[ip_allowed]"), engine.ErrCaveatNotAllowed, ""},
		{"expiration not allowed", []tuple.Relationship{{Resource: tuple.ObjectRef{Type: "document", ID: "d"}, Relation: "banned", Subject: tuple.SubjectRef{Type: "user", ID: "a"}, Expiration: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}, engine.ErrExpirationNotAllowed, ""},
		{"caveat context", rels(`document:d#viewer@user:anne[ip_allowed:{"port":1}]`), engine.ErrCaveatContext, ""},
		{"malformed id", []tuple.Relationship{{Resource: tuple.ObjectRef{Type: "document", ID: "d d"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "a"}}}, engine.ErrInvalidRelationship, ""},
		{"key twice", rels("document:d#viewer@user:anne", "document:d#viewer@user:anne[ip_allowed]"), engine.ErrInvalidRequest, "contextual relationships 0 and 1"},
		{"too many", rels("document:a#viewer@user:a", "document:b#viewer@user:a", "document:c#viewer@user:a", "document:d#viewer@user:a"), engine.ErrInvalidRequest, "4 contextual relationships exceed the limit of 3"},
		{"too large", rels("document:" + strings.Repeat("x", 190) + "#viewer@user:anne"), engine.ErrInvalidRequest, "exceed the limit of 200"},
	}
	sub := tuple.SubjectRef{Type: "user", ID: "anne"}
	doc := tuple.ObjectRef{Type: "document", ID: "d"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// What a write says, for comparison.
			if tc.err != nil && !errors.Is(tc.err, engine.ErrInvalidRequest) {
				ups := []engine.Update{}
				for _, r := range tc.rels {
					ups = append(ups, engine.Update{Op: engine.OpTouch, Relationship: r})
				}
				_, werr := f.eng.WriteRelationships(f.ctx, engine.WriteRequest{Updates: ups})
				if !errors.Is(werr, tc.err) {
					t.Fatalf("a write says %v, want %v", werr, tc.err)
				}
			}
			// Every read refuses alike.
			calls := map[string]func() error{
				"check": func() error {
					_, err := f.eng.Check(f.ctx, engine.CheckRequest{CheckRequest: engine.CheckQuery{Resource: doc, Permission: "view", Subject: sub}, Contextual: tc.rels})
					return err
				},
				"bulk": func() error {
					_, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Items: []engine.BulkCheckItem{{CheckRequest: engine.CheckQuery{Resource: doc, Permission: "view", Subject: sub}}}, Contextual: tc.rels})
					return err
				},
				"set": func() error {
					_, err := f.eng.CheckPermissionSet(f.ctx, engine.PermissionSetRequest{Resources: []tuple.ObjectRef{doc}, Subject: sub, Contextual: tc.rels})
					return err
				},
				"expand": func() error {
					_, _, err := f.eng.Expand(f.ctx, engine.ExpandRequest{ExpandRequest: engine.ExpandQuery{Resource: doc, Permission: "view"}, Contextual: tc.rels})
					return err
				},
				"lookup resources": func() error {
					_, _, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: "document", Permission: "view", Subject: sub}, Contextual: tc.rels})
					return err
				},
				"lookup subjects": func() error {
					_, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{LookupSubjectsRequest: engine.LookupSubjectsQuery{Resource: doc, Permission: "view", SubjectType: "user"}, Contextual: tc.rels})
					return err
				},
			}
			for name, call := range calls {
				err := call()
				switch {
				case tc.err == nil && err != nil:
					t.Errorf("%s: %v", name, err)
				case tc.err != nil && !errors.Is(err, tc.err):
					t.Errorf("%s: err = %v, want %v", name, err, tc.err)
				case tc.err != nil && errors.Is(tc.err, engine.ErrInvalidRequest) == false && errors.Is(err, engine.ErrLimitExceeded):
					t.Errorf("%s: %v is a limit error; a contextual relationship over a limit is an invalid request", name, err)
				case tc.msg != "" && !strings.Contains(err.Error(), tc.msg):
					t.Errorf("%s: %q does not say %q", name, err, tc.msg)
				}
			}
		})
	}
}

// TestContextualSemantics: contextual relationships count as if touched
// for the request (replacing a stored one with the same key, caveat and
// expiration included), on every read, and are never written.
func TestContextualSemantics(t *testing.T) {
	f := newFixture(t, engine.Options{})
	z := f.touch("document:d#viewer@user:anne", "group:eng#member@user:carl")
	anne := tuple.SubjectRef{Type: "user", ID: "anne"}
	carl := tuple.SubjectRef{Type: "user", ID: "carl"}
	doc := tuple.ObjectRef{Type: "document", ID: "d"}
	now := f.clk.Now()
	expired := tuple.Relationship{Resource: doc, Relation: "viewer", Subject: anne, Expiration: now.Add(-time.Minute)}
	later := tuple.Relationship{Resource: doc, Relation: "viewer", Subject: carl, Expiration: now.Add(time.Hour)}
	tests := []struct {
		name       string
		contextual []tuple.Relationship
		sub        tuple.SubjectRef
		want       engine.Permissionship
	}{
		{"stored", nil, anne, engine.HasPermission},
		{"added through a group", []tuple.Relationship{mustParse(t, "document:d#viewer@group:eng#member")}, carl, engine.HasPermission},
		{"replaced by an expired one", []tuple.Relationship{expired}, anne, engine.NoPermission},
		{"replaced by a caveated one", []tuple.Relationship{mustParse(t, "document:d#viewer@user:anne[ip_allowed]")}, anne, engine.ConditionalPermission},
		{"excluded", []tuple.Relationship{mustParse(t, "document:d#banned@user:anne")}, anne, engine.NoPermission},
		{"expiring later", []tuple.Relationship{later}, carl, engine.HasPermission},
		{"wildcard", []tuple.Relationship{mustParse(t, "document:d#viewer@user:*")}, carl, engine.HasPermission},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := engine.AtLeastAsFresh(z)
			q := engine.CheckQuery{Resource: doc, Permission: "view", Subject: tc.sub}
			resp, err := f.eng.Check(f.ctx, engine.CheckRequest{Consistency: c, CheckRequest: q, Contextual: tc.contextual})
			if err != nil || resp.Permissionship != tc.want {
				t.Fatalf("check: %v %v, want %v", resp.Permissionship, err, tc.want)
			}
			bulk, err := f.eng.CheckBulk(f.ctx, engine.BulkCheckRequest{Consistency: c, Items: []engine.BulkCheckItem{{CheckRequest: q}}, Contextual: tc.contextual})
			if err != nil || bulk.Results[0].Permissionship != tc.want {
				t.Fatalf("bulk: %v %v, want %v", bulk.Results, err, tc.want)
			}
			set, err := f.eng.CheckPermissionSet(f.ctx, engine.PermissionSetRequest{Consistency: c, Resources: []tuple.ObjectRef{doc}, Subject: tc.sub, Contextual: tc.contextual})
			if err != nil || set.Results[0][0].Permissionship != tc.want {
				t.Fatalf("set: %v %v, want %v", set.Results, err, tc.want)
			}
			seq, _, err := f.eng.LookupResources(f.ctx, engine.LookupResourcesRequest{Consistency: c, LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: "document", Permission: "view", Subject: tc.sub}, Contextual: tc.contextual})
			if err != nil {
				t.Fatal(err)
			}
			got := engine.NoPermission
			for r, err := range seq {
				if err != nil {
					t.Fatal(err)
				}
				if r.ResourceID == "d" {
					got = r.Permissionship
				}
			}
			if got != tc.want {
				t.Fatalf("lookup resources: %v, want %v", got, tc.want)
			}
			subs, _, err := f.eng.LookupSubjects(f.ctx, engine.LookupSubjectsRequest{Consistency: c, LookupSubjectsRequest: engine.LookupSubjectsQuery{Resource: doc, Permission: "view", SubjectType: "user"}, Contextual: tc.contextual})
			if err != nil {
				t.Fatal(err)
			}
			got = engine.NoPermission
			for r, err := range subs {
				if err != nil {
					t.Fatal(err)
				}
				if r.SubjectID == tc.sub.ID || (r.SubjectID == tuple.Wildcard && got == engine.NoPermission) {
					got = r.Permissionship
				}
			}
			if got != tc.want {
				t.Fatalf("lookup subjects: %v, want %v", got, tc.want)
			}
			tree, _, err := f.eng.Expand(f.ctx, engine.ExpandRequest{Consistency: c, ExpandRequest: engine.ExpandQuery{Resource: doc, Permission: "viewer"}, Contextual: tc.contextual})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.contextual {
				if r.Relation != "viewer" || r.ExpiredAt(now) {
					continue
				}
				found := false
				for _, s := range tree.Subjects {
					found = found || s.Subject == r.Subject
				}
				if !found {
					t.Fatalf("expand of viewer does not list the contextual %s: %+v", r.Subject, tree.Subjects)
				}
			}
		})
	}
	// Nothing was written: the store holds what it held.
	page, err := f.eng.ReadRelationships(f.ctx, engine.FullyConsistent(), tuple.Filter{ResourceType: "document"}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Relationships) != 1 || page.Relationships[0].Key().String() != "document:d#viewer@user:anne" {
		t.Fatalf("the store holds %v after contextual reads", page.Relationships)
	}
}
