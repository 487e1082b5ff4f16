package cli

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// renderExplanation draws the explanation of a check (pemba check
// --explain) as an indented tree, one step per line, in the manner of
// renderTree:
//
//	✓ crm_customer:c42#view
//	└── ✓ ∪
//	    └── ✓ → crm_customer:c42#region->viewer
//	        └── ✓ region:north#viewer  via crm_customer:c42#region@region:north
//	            └── ✓ region:north#viewer@employee:zhang
//
// ✓ grants, ✗ does not, ? depends on missing context, ! failed. ∪, ∩ and
// − are union, intersection and exclusion (the first child minus the
// second); → is an arrow, one child per relationship it followed ("via"
// names the relationship that led to a step). A grant shows its witness:
// one granting branch of each union, every branch of an intersection.
// After "—" comes why a step decided alone: a missing relationship (and
// the one that would grant), a false caveat with its expression and the
// values used, an expired relationship, an exclusion, the depth limit
// with the path, a cycle.
func renderExplanation(x *pb.CheckExplanation) string {
	if x.GetRoot() == nil {
		return "(no explanation)\n"
	}
	var b strings.Builder
	var walk func(n *pb.ExplainNode, prefix, branch string)
	walk = func(n *pb.ExplainNode, prefix, branch string) {
		b.WriteString(prefix)
		b.WriteString(branch)
		b.WriteString(explainLabel(n))
		b.WriteByte('\n')
		childPrefix := prefix
		switch branch {
		case "├── ":
			childPrefix += "│   "
		case "└── ":
			childPrefix += "    "
		}
		for i, c := range n.GetChildren() {
			br := "├── "
			if i == len(n.GetChildren())-1 {
				br = "└── "
			}
			walk(c, childPrefix, br)
		}
	}
	walk(x.GetRoot(), "", "")
	if len(x.GetWitness()) > 0 {
		b.WriteString("witness (these relationships alone grant):\n")
		for _, r := range x.GetWitness() {
			b.WriteString("  " + relationshipText(r) + "\n")
		}
	}
	if r := x.GetNearest(); r != nil {
		b.WriteString("nearest grant (this relationship, written, would grant): " + relationshipText(r) + "\n")
	}
	return b.String()
}

// explainMark is the answer of a step as one symbol.
func explainMark(n *pb.ExplainNode) string {
	if n.GetError() != "" {
		return "!"
	}
	switch n.GetPermissionship() {
	case pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		return "✓"
	case pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return "?"
	}
	return "✗"
}

func objectText(o *pb.ObjectReference) string { return o.GetObjectType() + ":" + o.GetObjectId() }

// relationshipText formats a relationship as resource#relation@subject
// with its caveat and expiry.
func relationshipText(r *pb.Relationship) string {
	return objectText(r.GetResource()) + "#" + r.GetRelation() + "@" + subjectName(r.GetSubject()) +
		conditionNote(r.GetOptionalCaveat(), r.GetOptionalExpiresAt())
}

func explainLabel(n *pb.ExplainNode) string {
	s := explainMark(n) + " "
	name := objectText(n.GetObject()) + "#" + n.GetRelation()
	switch n.GetKind() {
	case pb.ExplainNode_KIND_RELATION:
		s += name
		if r := n.GetRelationship(); r != nil {
			s += "  via " + relationshipText(r)
		}
	case pb.ExplainNode_KIND_UNION:
		s += "∪"
	case pb.ExplainNode_KIND_INTERSECTION:
		s += "∩"
	case pb.ExplainNode_KIND_EXCLUSION:
		s += "−"
	case pb.ExplainNode_KIND_ARROW:
		if n.GetArrowAll() {
			s += "→ " + name + ".all(" + n.GetTarget() + ")"
		} else {
			s += "→ " + name + "->" + n.GetTarget()
		}
	case pb.ExplainNode_KIND_RELATIONSHIP:
		switch {
		case n.GetRelationship() != nil:
			s += relationshipText(n.GetRelationship())
		case n.GetWanted() != nil:
			s += "no " + relationshipText(n.GetWanted())
		default:
			s += "no " + name + " relationship can hold the subject"
		}
	case pb.ExplainNode_KIND_SELF:
		s += "self"
	case pb.ExplainNode_KIND_NIL:
		s += "nil"
	}
	if c := n.GetCaveat(); c != nil {
		s += "  [caveat " + c.GetName() + ": " + c.GetExpression()
		if ctx := c.GetContext().AsMap(); len(ctx) > 0 {
			s += " with " + tuple.FormatContext(ctx)
		}
		s += " = " + caveatWord(c) + "]"
	}
	if why := explainWhy(n); why != "" {
		s += " — " + why
	}
	if p := explainPlan(n); p != "" {
		s += "  [plan: " + p + "]"
	}
	if n.GetRepeat() {
		s += " (answered above)"
	}
	if n.GetTruncated() {
		s += " … (more branches not shown: size limit)"
	}
	return s
}

// explainPlan describes the planner's choice at a step; empty for the
// written order.
func explainPlan(n *pb.ExplainNode) string {
	switch n.GetPlan() {
	case "":
		return ""
	case "children_statistics":
		order := make([]string, len(n.GetOrder()))
		for i, o := range n.GetOrder() {
			order[i] = strconv.Itoa(int(o) + 1)
		}
		return "branches " + strings.Join(order, ", ") + " in that order, cheapest first by the statistics"
	case "exclusion_subtraction_first":
		return "subtraction first"
	case "exclusion_base_skipped":
		return "subtraction first; it holds, so the base was not evaluated"
	}
	return n.GetPlan()
}

func caveatWord(c *pb.CaveatEvaluation) string {
	switch c.GetResult() {
	case pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		return "true"
	case pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return "unknown, needs " + strings.Join(c.GetMissing(), ", ")
	}
	return "false"
}

// explainWhy says why a step decided alone; empty when its children do.
func explainWhy(n *pb.ExplainNode) string {
	switch n.GetReason() {
	case pb.ExplainNode_REASON_MISSING_RELATIONSHIP:
		if n.GetKind() == pb.ExplainNode_KIND_ARROW {
			return "no relationship to follow"
		}
		return "missing"
	case pb.ExplainNode_REASON_CAVEAT_FALSE:
		return "caveat false"
	case pb.ExplainNode_REASON_CAVEAT_MISSING_CONTEXT:
		return "needs context: " + strings.Join(n.GetMissingContext(), ", ")
	case pb.ExplainNode_REASON_EXPIRED:
		return "expired at " + n.GetRelationship().GetOptionalExpiresAt().AsTime().UTC().Format(time.RFC3339)
	case pb.ExplainNode_REASON_EXCLUDED:
		return "excluded by the second branch"
	case pb.ExplainNode_REASON_DEPTH_LIMIT:
		return "depth limit: " + strings.Join(n.GetPath(), " -> ")
	case pb.ExplainNode_REASON_CYCLE:
		return "cycle: back to a relation already on the path"
	case pb.ExplainNode_REASON_SUBJECT_NOT_ALLOWED:
		return "the schema allows no such subject here"
	case pb.ExplainNode_REASON_NO_TARGET:
		return "type " + n.GetRelationship().GetSubject().GetObject().GetObjectType() + " has no " + n.GetTarget() + " to follow"
	case pb.ExplainNode_REASON_SUBJECT_ITSELF:
		return "the subject itself"
	case pb.ExplainNode_REASON_NOT_SELF:
		return "not the object itself"
	}
	return ""
}

// explanationOf returns the explanation a failed check carries in its
// status details (a check that hit the depth limit), or nil.
func explanationOf(err error) *pb.CheckExplanation {
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		return nil
	}
	for _, d := range gs.GRPCStatus().Details() {
		if x, ok := d.(*pb.CheckExplanation); ok {
			return x
		}
	}
	return nil
}
