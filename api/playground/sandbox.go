package playground

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/engine/validation"
	"github.com/pemba-authz/pemba/schema"
)

// This file is the playground's only contact with the engine: every
// request gets a fresh engine over an empty in-memory store, which is
// dropped when the request ends, so nothing a page sends outlives it and
// no request can see the server's data.

// Problem is an error in a pane, at a line (and a column where known),
// both from 1.
type Problem struct {
	Pane    string `json:"pane"`
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// AssertionResult is the outcome of one assertion of the assertions pane.
type AssertionResult struct {
	Line int    `json:"line"`
	Kind string `json:"kind"` // assertTrue, assertFalse or assertCaveated
	Text string `json:"text"`
	Pass bool   `json:"pass"`
	// Message and Explain say why a failed assertion failed: the answer
	// it got and the path that led to it.
	Message string `json:"message,omitempty"`
	Explain string `json:"explain,omitempty"`
}

// ValidationResult is the outcome of one entry of the validation key
// (the expected subjects of a resource#permission).
type ValidationResult struct {
	Line     int      `json:"line"`
	Key      string   `json:"key"`
	Pass     bool     `json:"pass"`
	Messages []string `json:"messages,omitempty"`
}

// RunResult answers /playground/api/run.
type RunResult struct {
	// Problems are errors in the panes: the schema does not compile, a
	// line is not a relationship, the schema refuses a relationship, the
	// YAML of the assertions pane is malformed. Failed expectations are
	// not problems; they are in Assertions and Validations.
	Problems    []Problem          `json:"problems"`
	Assertions  []AssertionResult  `json:"assertions"`
	Validations []ValidationResult `json:"validations"`
}

// CheckResult answers /playground/api/check.
type CheckResult struct {
	// Problems are errors in the schema and relationships panes; when the
	// schema does not compile nothing is checked.
	Problems []Problem `json:"problems"`
	// Error says why the check itself could not be answered (a malformed
	// check, an unknown permission); empty when it was.
	Error string `json:"error,omitempty"`
	// Permissionship is HAS_PERMISSION, NO_PERMISSION or
	// CONDITIONAL_PERMISSION.
	Permissionship string   `json:"permissionship,omitempty"`
	MissingContext []string `json:"missingContext,omitempty"`
	// Tree is the Expand tree of resource#permission, with the nodes that
	// grant the subject marked.
	Tree *Node `json:"tree,omitempty"`
}

// Node is one node of an Expand tree, as the page draws it.
type Node struct {
	// Kind is leaf, union, intersection or exclusion.
	Kind string `json:"kind"`
	// Arrow marks a node that followed an arrow to other objects: its
	// Subjects are the relationships followed, its Children their targets.
	Arrow    bool   `json:"arrow,omitempty"`
	Object   string `json:"object"`
	Relation string `json:"relation"`
	// Conditions are the caveat and expiry of the relationship through
	// which the parent reached this node.
	Conditions string    `json:"conditions,omitempty"`
	Subjects   []Subject `json:"subjects,omitempty"`
	Children   []*Node   `json:"children,omitempty"`
	// Grants marks the nodes on a path that gives the checked subject the
	// permission: a leaf that lists it, a union with such a child, an
	// intersection whose every child grants, an exclusion whose first
	// child grants and no other does.
	Grants    bool `json:"grants,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
	// Elided counts the children left out to keep the drawing small.
	Elided int `json:"elided,omitempty"`
}

// Subject is one stored subject of a leaf.
type Subject struct {
	Subject    string `json:"subject"`
	Conditions string `json:"conditions,omitempty"`
	// Match marks the checked subject (or its type's wildcard).
	Match bool `json:"match,omitempty"`
}

// maxTreeNodes bounds the nodes of a tree sent to the page.
const maxTreeNodes = 500

// fileName names the composed validation file in messages.
const fileName = "playground.yaml"

// compileSchema compiles the schema pane, reporting every error at its
// line and column (in characters).
func compileSchema(text string) []Problem {
	text = normalize(text)
	_, err := schema.Compile("schema.zed", text)
	if err == nil {
		return nil
	}
	var list schema.ErrorList
	if !errors.As(err, &list) {
		return []Problem{{Pane: paneSchema, Line: 1, Message: err.Error()}}
	}
	lines := strings.Split(text, "\n")
	out := make([]Problem, 0, len(list))
	for _, e := range list {
		p := Problem{Pane: paneSchema, Line: max(e.Pos.Line, 1), Message: e.Msg}
		if e.Pos.IsValid() && e.Pos.Line <= len(lines) {
			l := lines[e.Pos.Line-1]
			col := min(max(e.Pos.Column-1, 0), len(l))
			p.Column = utf8.RuneCountInString(l[:col]) + 1
		}
		out = append(out, p)
	}
	return out
}

// parseFile composes the panes and parses the result, mapping parse
// errors to their panes.
func parseFile(p Panes) (*validation.File, layout, []Problem) {
	text, lay := p.compose()
	f, err := validation.Parse(fileName, []byte(text))
	if err == nil {
		return f, lay, nil
	}
	var list validation.ErrorList
	if !errors.As(err, &list) {
		return nil, lay, []Problem{{Pane: paneAssertions, Line: 1, Message: err.Error()}}
	}
	var out []Problem
	for _, e := range list {
		pane, line := lay.locate(e.Pos.Line)
		out = append(out, Problem{Pane: pane, Line: line, Message: e.Msg})
	}
	return nil, lay, out
}

// run compiles the schema and runs the file the panes make.
func run(ctx context.Context, p Panes, now func() time.Time) (*RunResult, error) {
	// Empty lists, not null: the page iterates over them.
	res := &RunResult{Problems: append([]Problem{}, compileSchema(p.Schema)...), Assertions: []AssertionResult{}, Validations: []ValidationResult{}}
	f, lay, problems := parseFile(p)
	res.Problems = append(res.Problems, problems...)
	if f == nil || len(res.Problems) > 0 {
		return res, nil
	}
	out, err := validation.Run(ctx, f, validation.Options{Now: now})
	if err != nil {
		return nil, fmt.Errorf("playground: run: %w", err)
	}
	// Run reports failures at lines of the composed file: an assertion's
	// own line, an expected subject's, a validation key's, or a
	// relationship's (one the schema refuses).
	failed := map[int][]validation.Failure{}
	for _, fl := range out.Failures {
		failed[fl.Pos.Line] = append(failed[fl.Pos.Line], fl)
	}
	claimed := map[int]bool{}
	for _, a := range f.Assertions {
		_, line := lay.locate(a.Pos.Line)
		r := AssertionResult{Line: line, Kind: a.Kind.String(), Text: strings.TrimSpace(a.Text), Pass: len(failed[a.Pos.Line]) == 0}
		for _, fl := range failed[a.Pos.Line] {
			r.Message = joinLine(r.Message, fl.Msg)
			r.Explain = joinLine(r.Explain, fl.Explain)
		}
		claimed[a.Pos.Line] = true
		res.Assertions = append(res.Assertions, r)
	}
	for _, exp := range f.Expected {
		_, line := lay.locate(exp.Pos.Line)
		v := ValidationResult{Line: line, Key: exp.Resource.String() + "#" + exp.Permission, Pass: true}
		lines := []int{exp.Pos.Line}
		for _, s := range exp.Subjects {
			lines = append(lines, s.Pos.Line)
		}
		for _, l := range lines {
			if claimed[l] {
				continue
			}
			claimed[l] = true
			for _, fl := range failed[l] {
				v.Pass = false
				v.Messages = append(v.Messages, fl.Msg)
			}
		}
		res.Validations = append(res.Validations, v)
	}
	for _, fl := range out.Failures {
		if claimed[fl.Pos.Line] {
			continue
		}
		pane, line := lay.locate(fl.Pos.Line)
		res.Problems = append(res.Problems, Problem{Pane: pane, Line: line, Message: fl.Msg})
	}
	return res, nil
}

func joinLine(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "\n" + b
}

// CheckRequest is the body of /playground/api/check: the panes, and the
// check to make against them.
type CheckRequest struct {
	Panes
	// Check is resource#permission@subject, optionally followed by
	// "with {json}".
	Check string `json:"check"`
	// Context is a caveat context as a JSON object; it overrides one
	// given in Check.
	Context string `json:"context"`
}

// check loads the schema and relationships panes into a fresh engine and
// answers the check, with the Expand tree of its resource#permission.
func check(ctx context.Context, req CheckRequest, now func() time.Time) (*CheckResult, error) {
	res := &CheckResult{Problems: compileSchema(req.Schema)}
	if len(res.Problems) > 0 {
		return res, nil
	}
	a, err := validation.ParseAssertion(strings.TrimSpace(req.Check))
	if err != nil {
		res.Error = fmt.Sprintf("check %q: %v", req.Check, err)
		return res, nil
	}
	if c := strings.TrimSpace(req.Context); c != "" {
		if a.Context, err = tuple.ParseContext(c); err != nil {
			res.Error = fmt.Sprintf("context: %v", err)
			return res, nil
		}
	}
	// The assertions pane plays no part in a check: its mistakes must not
	// stop one.
	f, lay, problems := parseFile(Panes{Schema: req.Schema, Relationships: req.Relationships})
	res.Problems = problems
	if f == nil {
		return res, nil
	}
	st, err := engine.OpenStore(ctx, engine.StoreOptions{Kind: engine.StoreMemory, Now: now})
	if err != nil {
		return nil, fmt.Errorf("playground: open store: %w", err)
	}
	defer st.Close()
	eng, err := engine.Open(ctx, st, engine.Options{Now: now, CacheBytes: -1})
	if err != nil {
		return nil, fmt.Errorf("playground: open engine: %w", err)
	}
	defer eng.Close()
	if _, _, err := eng.WriteSchema(ctx, "playground", f.Schema); err != nil {
		return nil, fmt.Errorf("playground: write schema: %w", err)
	}
	if err := load(ctx, eng, f, lay, res); err != nil {
		return nil, err
	}
	cons := engine.FullyConsistent()
	ans, err := eng.Check(ctx, engine.CheckRequest{Consistency: cons, Context: a.Context,
		CheckRequest: engine.CheckQuery{Resource: a.Resource, Permission: a.Permission, Subject: a.Subject}})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		res.Error = err.Error()
		return res, nil
	}
	res.Permissionship = ans.Permissionship.String()
	res.MissingContext = ans.MissingContext
	tree, _, err := eng.Expand(ctx, engine.ExpandRequest{Consistency: cons, Context: a.Context,
		ExpandRequest: engine.ExpandQuery{Resource: a.Resource, Permission: a.Permission}})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		res.Error = "expand: " + err.Error()
		return res, nil
	}
	budget := maxTreeNodes
	res.Tree = drawTree(tree, a.Subject, grantsOf(tree, a.Subject), ans.Permissionship != engine.NoPermission, &budget)
	return res, nil
}

// load writes the relationships, reporting each one the schema refuses at
// its line and loading the rest.
func load(ctx context.Context, eng *engine.Engine, f *validation.File, lay layout, res *CheckResult) error {
	seen := map[tuple.Key]bool{}
	var pending []validation.Relationship
	for _, r := range f.Relationships {
		if !seen[r.Key()] {
			seen[r.Key()] = true
			pending = append(pending, r)
		}
	}
	for len(pending) > 0 {
		chunk := pending[:min(len(pending), eng.Limits().MaxUpdatesPerWrite)]
		ups := make([]engine.Update, len(chunk))
		for i, r := range chunk {
			ups[i] = engine.Update{Op: engine.OpTouch, Relationship: r.Relationship}
		}
		_, err := eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "playground", Updates: ups})
		var re *engine.RelationshipError
		switch {
		case err == nil:
			pending = pending[len(chunk):]
		case errors.As(err, &re) && re.Index >= 0 && re.Index < len(chunk):
			bad := chunk[re.Index]
			_, line := lay.locate(bad.Pos.Line)
			res.Problems = append(res.Problems, Problem{Pane: paneRelationships, Line: line,
				Message: fmt.Sprintf("relationship %s: %v: %s", bad.Relationship, re.Reason, re.Detail)})
			pending = append(pending[:re.Index:re.Index], pending[re.Index+1:]...)
		default:
			return fmt.Errorf("playground: load relationships: %w", err)
		}
	}
	return nil
}

// matches reports whether a stored subject names sub: the same subject,
// or the wildcard of its type.
func matches(s, sub tuple.SubjectRef) bool {
	return s == sub || (s.IsWildcard() && s.Type == sub.Type && sub.Relation == "")
}

// grantsOf finds the nodes of t on a path that gives sub the permission
// (see Node.Grants). Caveats are not evaluated: the check's answer says
// whether they hold.
func grantsOf(t *engine.Tree, sub tuple.SubjectRef) map[*engine.Tree]bool {
	g := map[*engine.Tree]bool{}
	var walk func(t *engine.Tree) bool
	walk = func(t *engine.Tree) bool {
		if t == nil {
			return false
		}
		var kids []bool
		for _, c := range t.Children {
			kids = append(kids, walk(c))
		}
		var ok bool
		switch t.Kind {
		case engine.Leaf:
			for _, s := range t.Subjects {
				ok = ok || matches(s.Subject, sub)
			}
			for _, k := range kids {
				ok = ok || k
			}
		case engine.Union:
			for _, k := range kids {
				ok = ok || k
			}
		case engine.Intersection:
			ok = len(kids) > 0
			for _, k := range kids {
				ok = ok && k
			}
		case engine.Exclusion:
			ok = len(kids) > 0 && kids[0]
			for _, k := range kids[min(1, len(kids)):] {
				ok = ok && !k
			}
		}
		g[t] = ok
		return ok
	}
	walk(t)
	return g
}

// drawTree converts t for the page, within budget nodes (the nodes that
// grant are drawn beyond it, so the highlighted path is whole). mark says
// whether granting nodes are marked: not when the check denies.
func drawTree(t *engine.Tree, sub tuple.SubjectRef, grants map[*engine.Tree]bool, mark bool, budget *int) *Node {
	*budget--
	n := &Node{
		Kind:       t.Kind.String(),
		Arrow:      t.Kind != engine.Leaf && len(t.Subjects) > 0,
		Object:     t.Object.String(),
		Relation:   t.Relation,
		Conditions: conditions(t.Caveat, t.Expiration),
		Grants:     mark && grants[t],
		Truncated:  t.Truncated,
	}
	for _, s := range t.Subjects {
		n.Subjects = append(n.Subjects, Subject{
			Subject:    s.Subject.String(),
			Conditions: conditions(s.Caveat, s.Expiration),
			Match:      mark && !n.Arrow && matches(s.Subject, sub),
		})
	}
	for _, c := range t.Children {
		// Over budget, only the path that grants is still drawn.
		if *budget <= 0 && !(mark && grants[c]) {
			n.Elided++
			continue
		}
		n.Children = append(n.Children, drawTree(c, sub, grants, mark, budget))
	}
	return n
}

// conditions formats a relationship's caveat and expiry.
func conditions(c *tuple.Caveat, exp time.Time) string {
	var parts []string
	if c != nil {
		parts = append(parts, "caveat "+c.Name)
	}
	if !exp.IsZero() {
		parts = append(parts, "expires "+exp.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}
