package cli

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// renderTree draws an expansion as an indented tree, one node per line:
//
//	∪ crm_customer:c42#view
//	├── crm_customer:c42#viewer: employee:deng, department:acme_sales_north_key#member
//	│   └── department:acme_sales_north_key#member: employee:zhou
//	└── → via region:north
//	    └── region:north#viewer: employee:zhang
//
// ∪, ∩ and − are union, intersection and exclusion (the first child minus
// the others); a leaf lists the stored subjects of a relation, with the
// expansion of each subject set below it; → marks an arrow, followed
// through the objects named after "via", each with the caveat or expiry of
// the relationship that led there. A subject reaches the permission along
// the path from the root to a leaf that lists it.
//
// With mark set, leaves that list mark (or the wildcard of its type) end
// in "← mark", so that the paths of one subject stand out.
func renderTree(t *pb.PermissionRelationshipTree, mark *tuple.SubjectRef) string {
	if t == nil {
		return "(empty)\n"
	}
	var b strings.Builder
	var walk func(t, parent *pb.PermissionRelationshipTree, prefix, branch string)
	walk = func(t, parent *pb.PermissionRelationshipTree, prefix, branch string) {
		b.WriteString(prefix)
		b.WriteString(branch)
		b.WriteString(nodeLabel(t, parent))
		if mark != nil && leafLists(t.GetLeaf(), *mark) {
			b.WriteString("  ← " + mark.String())
		}
		b.WriteByte('\n')
		var children []*pb.PermissionRelationshipTree
		if in := t.GetIntermediate(); in != nil {
			children = in.GetChildren()
		} else {
			children = t.GetLeaf().GetSubjectSetExpansions()
		}
		childPrefix := prefix
		switch branch {
		case "├── ":
			childPrefix += "│   "
		case "└── ":
			childPrefix += "    "
		}
		for i, c := range children {
			br := "├── "
			if i == len(children)-1 {
				br = "└── "
			}
			walk(c, t, childPrefix, br)
		}
	}
	walk(t, nil, "", "")
	return b.String()
}

func nodeName(t *pb.PermissionRelationshipTree) string {
	o := t.GetExpandedObject()
	return o.GetObjectType() + ":" + o.GetObjectId() + "#" + t.GetExpandedRelation()
}

func nodeLabel(t, parent *pb.PermissionRelationshipTree) string {
	var s string
	if in := t.GetIntermediate(); in != nil {
		if via := arrowTargets(t); via != nil {
			s = "→ "
			if in.GetOperation() == pb.AlgebraicSubjectSet_OPERATION_INTERSECTION {
				s = "→ all "
			}
			if parent == nil || nodeName(parent) != nodeName(t) {
				s += nodeName(t) + " "
			}
			if len(via) == 0 {
				s += "via nothing (no relationship to follow)"
			} else {
				s += "via " + strings.Join(via, ", ")
			}
		} else {
			s = opSymbol(in.GetOperation()) + " " + nodeName(t)
		}
	} else if t.GetTruncated() && len(t.GetLeaf().GetSubjects()) == 0 {
		// Not expanded (depth limit or cycle): its subjects are unknown,
		// not absent.
		return nodeName(t) + " … (truncated)"
	} else {
		s = nodeName(t) + ": " + leafSubjects(t.GetLeaf())
	}
	if t.GetTruncated() {
		s += " … (truncated)"
	}
	return s
}

// arrowTargets returns the objects an arrow node followed (non-nil), or
// nil for a node that is not an arrow. Set operations and computed
// relations stay on one object; only an arrow leads to others.
func arrowTargets(t *pb.PermissionRelationshipTree) []string {
	in := t.GetIntermediate()
	children := in.GetChildren()
	if len(children) == 0 {
		// A set operation always has operands; an arrow may find nothing.
		return []string{}
	}
	self := t.GetExpandedObject()
	var via []string
	arrow := false
	for _, c := range children {
		o := c.GetExpandedObject()
		if o.GetObjectType() != self.GetObjectType() || o.GetObjectId() != self.GetObjectId() {
			arrow = true
		}
		// The relationship followed may be caveated or expire: the
		// branch counts only while that holds.
		via = append(via, o.GetObjectType()+":"+o.GetObjectId()+conditionNote(c.GetOptionalCaveat(), c.GetOptionalExpiresAt()))
	}
	if !arrow {
		return nil
	}
	return via
}

func opSymbol(op pb.AlgebraicSubjectSet_Operation) string {
	switch op {
	case pb.AlgebraicSubjectSet_OPERATION_UNION:
		return "∪"
	case pb.AlgebraicSubjectSet_OPERATION_INTERSECTION:
		return "∩"
	case pb.AlgebraicSubjectSet_OPERATION_EXCLUSION:
		return "−"
	}
	return "?"
}

// leafSubjects lists a leaf's subjects, each with the caveat or expiry of
// its relationship.
func leafSubjects(l *pb.DirectSubjectSet) string {
	if len(l.GetSubjects()) == 0 {
		return "(none)"
	}
	cond := map[string]string{}
	for _, c := range l.GetConditionalSubjects() {
		cond[subjectName(c.GetSubject())] = conditionNote(c.GetOptionalCaveat(), c.GetOptionalExpiresAt())
	}
	names := make([]string, len(l.GetSubjects()))
	for i, s := range l.GetSubjects() {
		n := subjectName(s)
		names[i] = n + cond[n]
	}
	return strings.Join(names, ", ")
}

// conditionNote formats a relationship's caveat and expiry as
// "[name:context][expires time]"; empty when it has neither.
func conditionNote(cv *pb.ContextualizedCaveat, exp *timestamppb.Timestamp) string {
	var note string
	if cv != nil {
		note += "[" + cv.GetCaveatName()
		if ctx := cv.GetContext().AsMap(); len(ctx) > 0 {
			note += ":" + tuple.FormatContext(ctx)
		}
		note += "]"
	}
	if exp != nil {
		note += "[expires " + exp.AsTime().UTC().Format(time.RFC3339) + "]"
	}
	return note
}

func subjectName(s *pb.SubjectReference) string {
	o := s.GetObject()
	n := o.GetObjectType() + ":" + o.GetObjectId()
	if r := s.GetOptionalRelation(); r != "" && r != tuple.Ellipsis {
		n += "#" + r
	}
	return n
}

// leafLists reports whether l lists s or the wildcard of s's type.
func leafLists(l *pb.DirectSubjectSet, s tuple.SubjectRef) bool {
	for _, ps := range l.GetSubjects() {
		o := ps.GetObject()
		rel := ps.GetOptionalRelation()
		if rel == tuple.Ellipsis {
			rel = ""
		}
		if o.GetObjectType() != s.Type || rel != s.Relation {
			continue
		}
		if o.GetObjectId() == s.ID || (o.GetObjectId() == tuple.Wildcard && s.Relation == "") {
			return true
		}
	}
	return false
}
