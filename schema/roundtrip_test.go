package schema

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

type genDef struct {
	name    string
	rels    []string            // relations
	perms   []string            // permissions
	types   map[string][]string // non-wildcard subject types per relation
	members []string            // every member, once complete
}

// genSchema builds a random valid schema as a token list. Relations only
// name types of earlier or the same definitions; permissions reference
// relations, earlier permissions, and arrows into earlier definitions, so
// the result always compiles.
func genSchema(r *rand.Rand) []string {
	var toks []string
	defs := make([]*genDef, 1+r.IntN(4))
	byName := map[string]*genDef{}
	for i := range defs {
		name := fmt.Sprintf("d%d", i)
		if r.IntN(4) == 0 {
			name = "t/" + name
		}
		defs[i] = &genDef{name: name, types: map[string][]string{}}
		byName[name] = defs[i]
	}
	withCaveat := r.IntN(2) == 0
	for i, d := range defs {
		toks = append(toks, "definition", d.name, "{")
		for j := range r.IntN(4) {
			rel := fmt.Sprintf("r%d", j)
			d.rels = append(d.rels, rel)
			toks = append(toks, "relation", rel, ":")
			seen := map[string]bool{}
			for range 1 + r.IntN(3) {
				t := defs[r.IntN(i+1)]
				entry := []string{t.name}
				switch r.IntN(4) {
				case 0:
					entry = append(entry, ":", "*")
				case 1:
					if len(t.members) > 0 {
						entry = append(entry, "#", t.members[r.IntN(len(t.members))])
					}
				}
				switch r.IntN(5) {
				case 0:
					entry = append(entry, "with", "expiration")
				case 1:
					if withCaveat {
						entry = append(entry, "with", "c0")
					}
				case 2:
					if withCaveat {
						entry = append(entry, "with", "c0", "and", "expiration")
					}
				}
				key := strings.Join(entry, " ")
				if seen[key] {
					continue
				}
				seen[key] = true
				if len(seen) > 1 {
					toks = append(toks, "|")
				}
				toks = append(toks, entry...)
				if len(entry) == 1 || entry[1] != ":" {
					d.types[rel] = append(d.types[rel], t.name)
				}
			}
		}
		for j := range r.IntN(4) {
			perm := fmt.Sprintf("p%d", j)
			toks = append(toks, "permission", perm, "=")
			toks = append(toks, genExpr(r, d, byName, 3)...)
			d.perms = append(d.perms, perm)
		}
		d.members = append(append([]string{}, d.rels...), d.perms...)
		toks = append(toks, "}")
	}
	if withCaveat {
		toks = append(toks, "caveat", "c0", "(", "a", "int", ",", "b", "list", "<", "string", ">", ")", "{ a > 1 && \"x\" in b }")
	}
	return toks
}

// genExpr returns the tokens of a permission expression on d.
func genExpr(r *rand.Rand, d *genDef, byName map[string]*genDef, depth int) []string {
	operand := func() []string {
		names := append(append([]string{}, d.rels...), d.perms...)
		if len(names) == 0 || r.IntN(6) == 0 {
			return []string{"nil"}
		}
		return []string{names[r.IntN(len(names))]}
	}
	arrow := func() []string {
		for _, rel := range d.rels {
			for _, tn := range d.types[rel] {
				if t := byName[tn]; t != d && len(t.members) > 0 {
					target := t.members[r.IntN(len(t.members))]
					switch r.IntN(3) {
					case 0:
						return []string{rel, "->", target}
					case 1:
						return []string{rel, ".", "any", "(", target, ")"}
					default:
						return []string{rel, ".", "all", "(", target, ")"}
					}
				}
			}
		}
		return operand()
	}
	if depth == 0 || r.IntN(4) == 0 {
		if r.IntN(3) == 0 {
			return arrow()
		}
		return operand()
	}
	if r.IntN(4) == 0 {
		x := append([]string{"("}, genExpr(r, d, byName, depth-1)...)
		return append(x, ")")
	}
	x := genExpr(r, d, byName, depth-1)
	x = append(x, []string{"+", "&", "-"}[r.IntN(3)])
	return append(x, genExpr(r, d, byName, depth-1)...)
}

// separators join tokens; several carry comments, so comments land in
// every position the grammar has.
var separators = []string{
	" ", " ", " ", "\n", "\n\n", "\t", " /* c */ ", "/*x*/", " // line\n", "\n// own line\n",
	"\n/* block\n   comment */\n", "\n\n// detached\n\n", " ; ",
}

func joinTokens(r *rand.Rand, toks []string) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 {
			sep := separators[r.IntN(len(separators))]
			if sep == " ; " && !(t == "relation" || t == "permission" || t == "definition" || t == "caveat") {
				sep = " "
			}
			b.WriteString(sep)
		}
		b.WriteString(t)
	}
	return b.String()
}

// TestRoundTripGenerated formats random valid schemas, with comments
// between arbitrary tokens, and checks that formatting is idempotent and
// preserves the compiled form (docs included).
func TestRoundTripGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		src := joinTokens(r, genSchema(r))
		if _, err := Compile("gen.zed", src); err != nil {
			t.Fatalf("case %d: generated schema does not compile: %v\n%s", i, err, src)
		}
		checkRoundTrip(t, src)
	}
}
