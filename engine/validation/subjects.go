package validation

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// member is one subject found in an Expand tree.
type member struct {
	subject  tuple.SubjectRef
	caveated bool
	// via holds the resource#relation of every leaf that lists the subject.
	via map[string]bool
	// exceptions are subjects removed from a wildcard.
	exceptions map[string]bool
}

func (m *member) viaList() string {
	return strings.Join(slices.Sorted(maps.Keys(m.via)), ">/<")
}

func (m *member) exceptionList() string {
	return strings.Join(slices.Sorted(maps.Keys(m.exceptions)), ", ")
}

// render formats the subject as an expected-subject line would.
func (m *member) render(key string) string {
	s := key
	if m.caveated {
		s += "[...]"
	}
	if len(m.exceptions) > 0 {
		s += " - {" + m.exceptionList() + "}"
	}
	return "[" + s + "]"
}

type memberSet map[string]*member

// subjectsOf computes the subjects of an Expand tree, with SpiceDB's
// meaning: every subject listed by a leaf, including usersets
// (group:eng#member) as well as the subjects they expand to, combined with
// set operations at intersection and exclusion nodes. Each subject
// remembers the leaves that list it.
func subjectsOf(t *engine.Tree) memberSet {
	if t == nil {
		return memberSet{}
	}
	switch t.Kind {
	case engine.Intersection:
		if len(t.Children) == 0 {
			return memberSet{}
		}
		sets := make([]memberSet, len(t.Children))
		for i, c := range t.Children {
			sets[i] = edgeSubjects(c)
		}
		return intersect(sets)
	case engine.Exclusion:
		if len(t.Children) == 0 {
			return memberSet{}
		}
		base := subjectsOf(t.Children[0])
		for _, c := range t.Children[1:] {
			base = exclude(base, subjectsOf(c))
		}
		return base
	}
	out := memberSet{}
	if t.Kind == engine.Leaf {
		onr := t.Object.String() + "#" + t.Relation
		for _, s := range t.Subjects {
			add(out, s.Subject, s.Caveat != nil, map[string]bool{onr: true}, nil)
		}
	}
	for _, c := range t.Children {
		for _, m := range edgeSubjects(c) {
			add(out, m.subject, m.caveated, m.via, m.exceptions)
		}
	}
	return out
}

// edgeSubjects is subjectsOf(c) as its parent sees it: c expands one of the
// parent's subjects (a subject set of a leaf, or an object an arrow
// followed), and a caveat on that relationship makes everything below it
// conditional.
func edgeSubjects(c *engine.Tree) memberSet {
	set := subjectsOf(c)
	if c.Caveat != nil {
		for _, m := range set {
			m.caveated = true
		}
	}
	return set
}

// add merges a subject into set (a union): it is caveated only if every
// occurrence is.
func add(set memberSet, s tuple.SubjectRef, caveated bool, via, exceptions map[string]bool) {
	key := s.String()
	m, ok := set[key]
	if !ok {
		m = &member{subject: s, caveated: caveated, via: map[string]bool{}, exceptions: map[string]bool{}}
		set[key] = m
		for x := range exceptions {
			m.exceptions[x] = true
		}
	} else {
		m.caveated = m.caveated && caveated
		// A subject excluded on one branch but not another is not excluded.
		for x := range m.exceptions {
			if !exceptions[x] {
				delete(m.exceptions, x)
			}
		}
	}
	for v := range via {
		m.via[v] = true
	}
}

// holds reports whether set contains s, directly or through the wildcard
// of its type (and not as an exception of it).
func holds(set memberSet, s tuple.SubjectRef) (*member, bool) {
	if m, ok := set[s.String()]; ok {
		return m, true
	}
	if s.Relation == "" && !s.IsWildcard() {
		if w, ok := set[s.Type+":*"]; ok && !w.exceptions[s.String()] {
			return w, true
		}
	}
	return nil, false
}

func intersect(sets []memberSet) memberSet {
	out := memberSet{}
	candidates := map[string]tuple.SubjectRef{}
	for _, set := range sets {
		for k, m := range set {
			candidates[k] = m.subject
		}
	}
	for _, key := range slices.Sorted(maps.Keys(candidates)) {
		s := candidates[key]
		var found []*member
		for _, set := range sets {
			m, ok := holds(set, s)
			if !ok {
				break
			}
			found = append(found, m)
		}
		if len(found) != len(sets) {
			continue
		}
		m := &member{subject: s, via: map[string]bool{}, exceptions: map[string]bool{}}
		for _, f := range found {
			m.caveated = m.caveated || f.caveated
			// Only a direct occurrence names a relation that grants s.
			if f.subject == s {
				for v := range f.via {
					m.via[v] = true
				}
			}
			if s.IsWildcard() {
				for x := range f.exceptions {
					m.exceptions[x] = true
				}
			}
		}
		out[key] = m
	}
	return out
}

func exclude(base, minus memberSet) memberSet {
	out := memberSet{}
	for key, m := range base {
		x, ok := holds(minus, m.subject)
		switch {
		case ok && !x.caveated:
			continue
		case ok && x.caveated:
			c := *m
			c.caveated = true
			out[key] = &c
			continue
		}
		c := *m
		if m.subject.IsWildcard() {
			c.exceptions = map[string]bool{}
			for e := range m.exceptions {
				c.exceptions[e] = true
			}
			for k2, x := range minus {
				if x.subject.Type == m.subject.Type && x.subject.Relation == "" && !x.subject.IsWildcard() {
					c.exceptions[k2] = true
				}
			}
		}
		out[key] = &c
	}
	return out
}

// pathsTo lists, as "a -> b -> c", the paths from the root of t to every
// leaf that lists sub (or its type's wildcard).
func pathsTo(t *engine.Tree, sub tuple.SubjectRef) []string {
	var out []string
	var walk func(t *engine.Tree, trail []string)
	walk = func(t *engine.Tree, trail []string) {
		if t == nil {
			return
		}
		trail = append(trail, nodeLabel(t))
		for _, s := range t.Subjects {
			if s.Subject == sub || (s.Subject.IsWildcard() && s.Subject.Type == sub.Type && sub.Relation == "") {
				out = append(out, strings.Join(append(trail, subjectLabel(s)), " -> "))
			}
		}
		for _, c := range t.Children {
			walk(c, trail)
		}
	}
	walk(t, nil)
	return out
}

func nodeLabel(t *engine.Tree) string {
	// The conditions of the relationship that led here come first: the
	// node counts only under them.
	label := t.Object.String() + "#" + t.Relation + conditionsLabel(t.Caveat, t.Expiration)
	switch t.Kind {
	case engine.Intersection:
		label += " (intersection)"
	case engine.Exclusion:
		label += " (exclusion)"
	}
	if t.Truncated {
		label += " (truncated)"
	}
	return label
}

func subjectLabel(s engine.TreeSubject) string {
	return s.Subject.String() + conditionsLabel(s.Caveat, s.Expiration)
}

// conditionsLabel formats a relationship's caveat and expiry.
func conditionsLabel(c *tuple.Caveat, exp time.Time) string {
	var l string
	if c != nil {
		l += "[" + c.Name + "]"
	}
	if !exp.IsZero() {
		l += "[expires " + exp.UTC().Format("2006-01-02T15:04:05Z") + "]"
	}
	return l
}

// renderTree prints t as an indented outline, at most depth levels deep.
func renderTree(t *engine.Tree, depth int) string {
	var b strings.Builder
	var walk func(t *engine.Tree, level int)
	walk = func(t *engine.Tree, level int) {
		if t == nil {
			return
		}
		pad := strings.Repeat("  ", level)
		fmt.Fprintf(&b, "%s%s", pad, nodeLabel(t))
		if len(t.Subjects) > 0 {
			labels := make([]string, len(t.Subjects))
			for i, s := range t.Subjects {
				labels[i] = subjectLabel(s)
			}
			sort.Strings(labels)
			const max = 8
			if len(labels) > max {
				labels = append(labels[:max], fmt.Sprintf("... %d more", len(labels)-max))
			}
			fmt.Fprintf(&b, ": %s", strings.Join(labels, ", "))
		}
		b.WriteByte('\n')
		if level+1 >= depth {
			if len(t.Children) > 0 {
				fmt.Fprintf(&b, "%s  ...\n", pad)
			}
			return
		}
		for _, c := range t.Children {
			walk(c, level+1)
		}
	}
	walk(t, 0)
	return b.String()
}
