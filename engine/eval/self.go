package eval

import (
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file holds the evaluation of "self" (schema.RewriteSelf, under
// "use self"), SpiceDB's: the self of object type:id holds exactly one
// subject, type:id itself as a plain object. It reads nothing. The other
// parts of the evaluator call into it:
//
//   - check: selfResult;
//   - expand: selfTree, a leaf listing the object;
//   - lookups: the analysis adds the object's own type to what a
//     permission can contain and records selfParents, from which the
//     reverse walk seeds "subject type:id is in the self of type:id"
//     (selfSeeds); the forward walk of LookupSubjects mentions the object
//     (selfMentions).

// selfHolds reports whether sub is the object typ:id itself.
func selfHolds(typ, id string, sub tuple.SubjectRef) bool {
	return sub.Relation == "" && sub.Type == typ && sub.ID == id && id != tuple.Wildcard
}

// selfResult is the value of "self" on f's object for sub.
func selfResult(f *frame, sub tuple.SubjectRef) result {
	if selfHolds(f.rel.Definition.Name, f.id, sub) {
		return resYes
	}
	return resNo
}

// selfTree is the expansion of "self" on obj within permission rel.
func selfTree(obj tuple.ObjectRef, rel string) *Tree {
	return &Tree{Kind: Leaf, Object: obj, Relation: rel, Subjects: []Subject{{Subject: tuple.SubjectRef{Type: obj.Type, ID: obj.ID}}}}
}

// hasSelf reports whether a rewrite uses self anywhere.
func hasSelf(w *schema.Rewrite) bool {
	if w == nil {
		return false
	}
	if w.Kind == schema.RewriteSelf {
		return true
	}
	for _, c := range w.Children {
		if hasSelf(c) {
			return true
		}
	}
	return false
}

// selfSeeds reaches, for a plain subject type:id, every relevant
// permission of type whose rewrite uses self in a positive position, on
// object id.
func (w *reverseWalk) selfSeeds(sub tuple.SubjectRef) {
	if sub.Relation != "" || sub.ID == tuple.Wildcard {
		return
	}
	for _, pe := range w.rq.e.an.selfParents[sub.Type] {
		// Like a relationship naming the subject: one relation, the
		// permission itself, on the path.
		w.reach(pe.parent, sub.ID, pe.exact, 1)
	}
}

// selfMentions records with mention, in a forward walk of LookupSubjects
// for plain subjects of subType, the object n of a rewrite's self.
func selfMentions(mention func(id string), def *schema.Definition, id, subType, subRel string) {
	if subRel == "" && subType == def.Name && id != tuple.Wildcard {
		mention(id)
	}
}
