package schema

import (
	"fmt"
	"sort"
	"strings"
)

// This file is the schema linter: warnings about a schema that compiles
// but probably does not say what its author meant.

// Lint checks, by the names that silence them.
const (
	// LintUnusedRelation: a relation that no permission, arrow or subject
	// type refers to (only a direct check can read it).
	LintUnusedRelation = "unused-relation"
	// LintUnreachablePermission: a permission that no subject can ever
	// have, whatever relationships are stored (nil, an intersection with
	// nil, an arrow over a relation that holds only wildcards, ...).
	LintUnreachablePermission = "unreachable-permission"
	// LintWildcardArrow: an arrow over a relation that allows wildcard
	// subjects; a wildcard names no object, so the arrow never follows it.
	LintWildcardArrow = "wildcard-arrow"
)

// LintChecks lists every lint check, sorted.
var LintChecks = []string{LintUnreachablePermission, LintUnusedRelation, LintWildcardArrow}

// ignoreDirective starts a comment that silences checks on one member:
// "// pemba:ignore unused-relation" in the member's doc comment or at the
// end of its line; several checks are separated by commas, and "all"
// silences every check. Text after the check names (which a colon may
// end) is a free reason.
const ignoreDirective = "pemba:ignore"

// Warning is one lint finding.
type Warning struct {
	Pos   Position
	Check string // one of LintChecks
	Msg   string
}

// String renders "file:line:col: warning: message (check)".
func (w Warning) String() string {
	return fmt.Sprintf("%s: warning: %s (%s)", w.Pos, w.Msg, w.Check)
}

// LintOptions configure Lint.
type LintOptions struct {
	// Disable names checks not to run (see LintChecks).
	Disable []string
}

// Lint returns the warnings for s, sorted by position. files are the
// parsed files s was compiled from (nil for none): their comments hold
// the "pemba:ignore" directives. A check named in opts.Disable does not
// run. Unknown check names are an error, so that a typo does not silence
// nothing quietly.
func Lint(s *Schema, files []*File, opts LintOptions) ([]Warning, error) {
	off := map[string]bool{}
	for _, name := range opts.Disable {
		if !isLintCheck(name) {
			return nil, fmt.Errorf("schema: unknown lint check %q (known: %s)", name, strings.Join(LintChecks, ", "))
		}
		off[name] = true
	}
	l := &linter{s: s, off: off, ignored: ignoredLines(files)}
	defs := make([]string, 0, len(s.Definitions))
	for name := range s.Definitions {
		defs = append(defs, name)
	}
	sort.Strings(defs)
	l.unused(defs)
	l.unreachable(defs)
	l.wildcardArrows(defs)
	sort.SliceStable(l.out, func(i, j int) bool {
		a, b := l.out[i].Pos, l.out[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return l.out, nil
}

func isLintCheck(name string) bool {
	for _, c := range LintChecks {
		if c == name {
			return true
		}
	}
	return false
}

type linter struct {
	s       *Schema
	off     map[string]bool
	ignored map[lineKey][]string // checks silenced by a directive on a line
	out     []Warning
}

type lineKey struct {
	file string
	line int
}

// ignoredLines collects the directives of files by the line they are on.
func ignoredLines(files []*File) map[lineKey][]string {
	m := map[lineKey][]string{}
	for _, f := range files {
		for _, g := range f.Comments {
			for _, c := range g.List {
				text := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(c.Text, "//"), "/*"), "*/"))
				checks := directiveChecks(text)
				if len(checks) == 0 {
					continue
				}
				pos := f.Position(c.Pos())
				k := lineKey{pos.Filename, pos.Line}
				m[k] = append(m[k], checks...)
			}
		}
	}
	return m
}

// silenced reports whether check is silenced for the member r: by a
// directive at the end of its line, or in the comment lines directly
// above it (its doc comment, above any annotations).
func (l *linter) silenced(r *Relation, check string) bool {
	match := func(list []string) bool {
		for _, c := range list {
			if c == check || c == "all" {
				return true
			}
		}
		return false
	}
	if match(l.ignored[lineKey{r.Pos.Filename, r.Pos.Line}]) {
		return true
	}
	for _, line := range strings.Split(r.Doc, "\n") {
		if match(directiveChecks(strings.TrimSpace(line))) {
			return true
		}
	}
	return false
}

// directiveChecks returns the checks a "pemba:ignore" comment text names:
// the comma-separated word after the directive, which may end in a colon
// before the reason ("pemba:ignore unused-relation: read directly"); nil
// for other text.
func directiveChecks(text string) []string {
	rest, ok := strings.CutPrefix(text, ignoreDirective)
	if !ok {
		return nil
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(fields[0], ":"), ",")
}

func (l *linter) warn(r *Relation, pos Position, check, format string, args ...any) {
	if l.off[check] || l.silenced(r, check) {
		return
	}
	l.out = append(l.out, Warning{Pos: pos, Check: check, Msg: fmt.Sprintf(format, args...)})
}

// unused reports relations nothing refers to.
func (l *linter) unused(defs []string) {
	used := map[*Relation]bool{}
	var walk func(rw *Rewrite)
	walk = func(rw *Rewrite) {
		if rw == nil {
			return
		}
		switch rw.Kind {
		case RewriteComputed:
			used[rw.Relation] = true
		case RewriteArrow:
			used[rw.Relation] = true
			for _, t := range rw.Targets {
				used[t] = true
			}
		}
		for _, ch := range rw.Children {
			walk(ch)
		}
	}
	for _, name := range defs {
		for _, r := range l.s.Definitions[name].Ordered {
			walk(r.Rewrite)
			for _, a := range r.Allowed {
				if a.Target != nil {
					used[a.Target] = true
				}
			}
		}
	}
	for _, name := range defs {
		for _, r := range l.s.Definitions[name].Ordered {
			if !r.IsPermission && !used[r] {
				l.warn(r, r.Pos, LintUnusedRelation, "relation %q of definition %q is not used by any permission, arrow or subject type", r.Name, name)
			}
		}
	}
}

// unreachable reports permissions that can never hold a subject. A
// relation with an allowed subject type can hold one; a permission can
// when its rewrite can, computed as a least fixpoint (recursion through
// arrows adds nothing that is not reachable without it).
func (l *linter) unreachable(defs []string) {
	can := map[*Relation]bool{}
	var eval func(rw *Rewrite) bool
	eval = func(rw *Rewrite) bool {
		if rw == nil {
			return false
		}
		switch rw.Kind {
		case RewriteSelf:
			return true
		case RewriteComputed:
			return can[rw.Relation]
		case RewriteArrow:
			for _, a := range rw.Relation.Allowed {
				if t := rw.Targets[a.Type]; t != nil && !a.Wildcard && can[t] {
					return true
				}
			}
			return false
		case RewriteUnion:
			for _, ch := range rw.Children {
				if eval(ch) {
					return true
				}
			}
			return false
		case RewriteIntersection:
			for _, ch := range rw.Children {
				if !eval(ch) {
					return false
				}
			}
			return true
		case RewriteExclusion:
			return eval(rw.Children[0])
		}
		return false
	}
	for _, name := range defs {
		for _, r := range l.s.Definitions[name].Ordered {
			if !r.IsPermission && len(r.Allowed) > 0 {
				can[r] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, name := range defs {
			for _, r := range l.s.Definitions[name].Ordered {
				if r.IsPermission && !can[r] && eval(r.Rewrite) {
					can[r] = true
					changed = true
				}
			}
		}
	}
	for _, name := range defs {
		for _, r := range l.s.Definitions[name].Ordered {
			if r.IsPermission && !can[r] {
				l.warn(r, r.Pos, LintUnreachablePermission, "permission %q of definition %q can never be granted: no relationships make %s hold", r.Name, name, RewriteString(r.Rewrite))
			}
		}
	}
}

// wildcardArrows reports arrows over relations that allow wildcards.
func (l *linter) wildcardArrows(defs []string) {
	for _, name := range defs {
		for _, r := range l.s.Definitions[name].Ordered {
			var walk func(rw *Rewrite)
			walk = func(rw *Rewrite) {
				if rw == nil {
					return
				}
				if rw.Kind == RewriteArrow {
					var wild []string
					for _, a := range rw.Relation.Allowed {
						if a.Wildcard {
							wild = append(wild, a.Type+":*")
						}
					}
					if len(wild) > 0 {
						l.warn(r, rw.Pos, LintWildcardArrow, "arrow %s follows relation %q, which allows wildcard subjects (%s): a wildcard names no object, so the arrow never follows it", RewriteString(rw), rw.Relation.Name, strings.Join(wild, ", "))
					}
				}
				for _, ch := range rw.Children {
					walk(ch)
				}
			}
			walk(r.Rewrite)
		}
	}
}
