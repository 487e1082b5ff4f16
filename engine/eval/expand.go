package eval

import (
	"context"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

func (rq *request) expand(ctx context.Context, req ExpandRequest) (*Tree, error) {
	resource, depth := req.Resource, req.Depth
	rel, err := rq.e.resolve(resource.Type, req.Permission)
	if err != nil {
		return nil, err
	}
	if resource.ID == "" || resource.ID == tuple.Wildcard {
		return nil, invalidRequest("resource %q needs a concrete id", resource.String())
	}
	if depth < 0 {
		return nil, invalidRequest("negative depth %d", depth)
	}
	if depth == 0 {
		depth = -1 // unlimited: bounded by cycles and MaxDepth
	}
	return rq.expandRel(ctx, nil, rel, resource.ID, depth)
}

// expandRel expands rel on id; remaining counts the relations still to
// expand below the path (negative: no limit).
func (rq *request) expandRel(ctx context.Context, path *frame, rel *schema.Relation, id string, remaining int) (*Tree, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obj := tuple.ObjectRef{Type: rel.Definition.Name, ID: id}
	stop := &Tree{Kind: Leaf, Object: obj, Relation: rel.Name, Truncated: true}
	if remaining == 0 {
		return stop, nil
	}
	depth := int32(1)
	if path != nil {
		depth = path.depth + 1
	}
	for f := path; f != nil; f = f.parent {
		if f.rel == rel && f.id == id {
			f.cycled.Store(true)
			return stop, nil
		}
	}
	f := &frame{parent: path, rel: rel, id: id, depth: depth}
	if int(depth) > rq.e.opts.MaxDepth {
		return nil, maxDepthError(rq.e.opts.MaxDepth, f)
	}
	if err := rq.mem.charge(treeNodeBytes); err != nil {
		return nil, err
	}
	next := remaining - 1
	if remaining < 0 {
		next = -1
	}
	if rel.Rewrite == nil {
		rels, err := rq.query(ctx, tuple.Filter{ResourceType: obj.Type, ResourceID: id, Relation: rel.Name})
		if err != nil {
			return nil, err
		}
		t := &Tree{Kind: Leaf, Object: obj, Relation: rel.Name}
		for _, r := range rels {
			t.Subjects = append(t.Subjects, Subject{Subject: r.Subject, Caveat: r.Caveat, Expiration: r.Expiration})
			if r.Subject.Relation == "" || next == 0 {
				continue
			}
			target, err := rq.e.resolve(r.Subject.Type, r.Subject.Relation)
			if err != nil {
				continue // not in the schema: listed, not expanded
			}
			c, err := rq.expandRel(ctx, f, target, r.Subject.ID, next)
			if err != nil {
				return nil, err
			}
			c.Caveat, c.Expiration = r.Caveat, r.Expiration
			t.Children = append(t.Children, c)
		}
		return t, nil
	}
	t, err := rq.expandRewrite(ctx, f, rel.Rewrite, next)
	if err != nil {
		return nil, err
	}
	if t.Relation != rel.Name || t.Object != obj {
		// A bare computed reference: keep the permission's name on top.
		t = &Tree{Kind: Union, Object: obj, Relation: rel.Name, Children: []*Tree{t}}
	}
	return t, nil
}

func (rq *request) expandRewrite(ctx context.Context, f *frame, w *schema.Rewrite, next int) (*Tree, error) {
	obj := tuple.ObjectRef{Type: f.rel.Definition.Name, ID: f.id}
	switch w.Kind {
	case schema.RewriteComputed:
		return rq.expandRel(ctx, f, w.Relation, f.id, next)
	case schema.RewriteSelf:
		return selfTree(obj, f.rel.Name), nil
	case schema.RewriteArrow:
		rels, err := rq.query(ctx, tuple.Filter{ResourceType: obj.Type, ResourceID: f.id, Relation: w.Relation.Name})
		if err != nil {
			return nil, err
		}
		t := &Tree{Kind: Union, Object: obj, Relation: f.rel.Name}
		if w.ArrowAll {
			t.Kind = Intersection
		}
		for _, r := range rels {
			// The tupleset's relationships show how the arrow was followed.
			t.Subjects = append(t.Subjects, Subject{Subject: r.Subject, Caveat: r.Caveat, Expiration: r.Expiration})
			if r.Subject.ID == tuple.Wildcard {
				continue
			}
			var c *Tree
			if target := w.Targets[r.Subject.Type]; target != nil {
				if c, err = rq.expandRel(ctx, f, target, r.Subject.ID, next); err != nil {
					return nil, err
				}
			} else {
				// The type has no such relation: nothing to reach
				// there, which decides an arrow-all.
				c = &Tree{Kind: Leaf, Object: r.Subject.Object(), Relation: w.TargetName}
			}
			// Check gates the branch by this relationship's conditions.
			c.Caveat, c.Expiration = r.Caveat, r.Expiration
			t.Children = append(t.Children, c)
		}
		return t, nil
	}
	t := &Tree{Kind: Union, Object: obj, Relation: f.rel.Name}
	switch w.Kind {
	case schema.RewriteIntersection:
		t.Kind = Intersection
	case schema.RewriteExclusion:
		t.Kind = Exclusion
	}
	for _, c := range w.Children {
		ct, err := rq.expandRewrite(ctx, f, c, next)
		if err != nil {
			return nil, err
		}
		t.Children = append(t.Children, ct)
	}
	return t, nil
}
