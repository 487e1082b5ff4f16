package schema

import (
	"sort"
	"strings"
)

// RewriteString renders a compiled rewrite in schema syntax, as a
// permission's right-hand side is written: "viewer + editor - banned",
// "parent->view", "members.all(active)". Parentheses appear only where
// precedence needs them (union binds tighter than intersection, which binds
// tighter than exclusion; all are left-associative), so equal rewrites
// render equally however they were parenthesised. ".any(x)" renders as
// "->x", its shorter synonym.
func RewriteString(rw *Rewrite) string {
	var b strings.Builder
	writeRewrite(&b, rw)
	return b.String()
}

func rewritePrec(rw *Rewrite) int {
	switch rw.Kind {
	case RewriteUnion:
		return PLUS.precedence()
	case RewriteIntersection:
		return AMP.precedence()
	case RewriteExclusion:
		return MINUS.precedence()
	}
	return 4 // operands bind tighter than any operator
}

func writeRewrite(b *strings.Builder, rw *Rewrite) {
	if rw == nil {
		b.WriteString("nil")
		return
	}
	switch rw.Kind {
	case RewriteNil:
		b.WriteString("nil")
		return
	case RewriteSelf:
		b.WriteString("self")
		return
	case RewriteComputed:
		b.WriteString(rw.Relation.Name)
		return
	case RewriteArrow:
		b.WriteString(rw.Relation.Name)
		if rw.ArrowAll {
			b.WriteString(".all(" + rw.TargetName + ")")
		} else {
			b.WriteString("->" + rw.TargetName)
		}
		return
	}
	op := map[RewriteKind]string{RewriteUnion: " + ", RewriteIntersection: " & ", RewriteExclusion: " - "}[rw.Kind]
	prec := rewritePrec(rw)
	for i, ch := range rw.Children {
		if i > 0 {
			b.WriteString(op)
		}
		// A child binding more loosely needs parentheses; so does the
		// right operand of an exclusion that is itself an exclusion
		// (a - (b - c) is not (a - b) - c).
		cp := rewritePrec(ch)
		if cp < prec || (i > 0 && cp == prec && rw.Kind == RewriteExclusion) {
			b.WriteByte('(')
			writeRewrite(b, ch)
			b.WriteByte(')')
			continue
		}
		writeRewrite(b, ch)
	}
}

// arrowTargets lists, sorted, where the arrows of rw lead:
// "parent->folder#view".
func arrowTargets(rw *Rewrite, out []string) []string {
	if rw == nil {
		return out
	}
	if rw.Kind == RewriteArrow {
		for typ, r := range rw.Targets {
			out = append(out, rw.Relation.Name+"->"+typ+"#"+r.Name)
		}
	}
	for _, ch := range rw.Children {
		out = arrowTargets(ch, out)
	}
	sort.Strings(out)
	return out
}
