package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Shapes of hostile schema that genSchema builds (issue 18): each is what
// a recursive or quadratic front end, analysis or set-up would choke on.
const (
	shapeOperatorChain   = iota // permission p = a - b - a - b ...
	shapeParens                 // permission p = ((((a))))
	shapeArrowChain             // definitions each with an arrow to the one before
	shapeHub                    // one relation accepting many types, a permission over all
	shapeCaveatDeep             // a caveat expression nested n deep
	shapeCaveatLong             // a caveat expression of n operators
	shapeManyDefinitions        // n unrelated definitions
	shapeMixed                  // an arrow chain whose permissions are operator chains
	shapeComputedChain          // one definition of n permissions, each naming the one before
	shapePartials               // n partials, each including the one before len(ops) times
	numShapes
)

// genHostileSchema builds a schema of the given shape and size from fuzz
// input; ops picks the operators (+, &, -) of operator chains and text is
// pasted into the schema where a name or expression goes, so the fuzzer
// can also break its syntax.
func genHostileSchema(shape uint8, n int, ops []byte, text string) string {
	var b strings.Builder
	op := func(i int) string {
		if len(ops) == 0 {
			return " - "
		}
		return [...]string{" + ", " & ", " - "}[int(ops[i%len(ops)])%3]
	}
	b.WriteString("definition user {}\n")
	switch shape % numShapes {
	case shapeOperatorChain:
		b.WriteString("definition doc {\n  relation a: user\n  relation b: user\n  permission p = a")
		for i := range n {
			b.WriteString(op(i))
			b.WriteString([...]string{"b", "a"}[i%2])
		}
		b.WriteString(text + "\n}\n")
	case shapeParens:
		b.WriteString("definition doc {\n  relation a: user\n  permission p = ")
		b.WriteString(strings.Repeat("(", n) + "a" + text + strings.Repeat(")", n))
		b.WriteString("\n}\n")
	case shapeArrowChain, shapeMixed:
		b.WriteString("definition doc0 {\n  relation viewer: user\n  permission view = viewer\n}\n")
		for k := 1; k < n; k++ {
			fmt.Fprintf(&b, "definition doc%d {\n  relation prev: doc%d\n  relation viewer: user | doc%d#view\n  permission view = viewer + prev->view", k, k-1, k-1)
			if shape%numShapes == shapeMixed {
				for i := range min(len(ops), 64) {
					b.WriteString(op(i) + "viewer")
				}
			}
			b.WriteString("\n}\n")
		}
		if text != "" {
			b.WriteString("definition extra { relation r: user\n permission p = " + text + " }\n")
		}
	case shapeHub:
		for k := range n {
			fmt.Fprintf(&b, "definition t%d {\n  relation member: user\n}\n", k)
		}
		b.WriteString("definition doc {\n  relation r: user")
		for k := range n {
			fmt.Fprintf(&b, " | t%d | t%d#member", k, k)
		}
		b.WriteString("\n  permission view = r")
		for k := range min(n, 5000) {
			fmt.Fprintf(&b, " + r->member%s", strings.Repeat(" + r", k%2))
		}
		b.WriteString(text + "\n}\n")
	case shapeCaveatDeep:
		b.WriteString("caveat c(x int) {\n  " + strings.Repeat("(", n) + "x > 1" + text + strings.Repeat(")", n) + "\n}\n")
		b.WriteString("definition doc {\n  relation a: user with c\n  permission p = a\n}\n")
	case shapeCaveatLong:
		b.WriteString("caveat c(x int) {\n  x")
		for i := range n {
			b.WriteString([...]string{" + ", " * ", " - "}[i%3] + "x")
		}
		b.WriteString(" > 1" + text + "\n}\n")
		b.WriteString("definition doc {\n  relation a: user with c\n  permission p = a\n}\n")
	case shapeComputedChain:
		b.WriteString("definition doc {\n  relation r: user\n  permission p0 = r\n")
		for k := 1; k < n; k++ {
			fmt.Fprintf(&b, "  permission p%d = p%d%s\n", k, k-1, op(k)+"r")
		}
		b.WriteString(text + "}\n")
	case shapePartials:
		b.WriteString("use partial\npartial p0 { relation r: user }\n")
		copies := min(max(len(ops), 1), 4)
		for k := 1; k <= n; k++ {
			fmt.Fprintf(&b, "partial p%d {%s }\n", k, strings.Repeat(fmt.Sprintf(" ...p%d", k-1), copies))
		}
		fmt.Fprintf(&b, "definition doc {\n ...p%d\n permission p = r%s }\n", n, text)
	case shapeManyDefinitions:
		for k := range n {
			fmt.Fprintf(&b, "definition d%d { relation r: user\n permission p = r }\n", k)
		}
		b.WriteString(text)
	}
	return b.String()
}

// writeHostile runs the whole write path in process: WriteSchema on a
// memory store, then a relationship write and a check on the schema if it
// was accepted. Errors are fine; a crash (a stack overflow cannot be
// recovered) or a hang is not.
func writeHostile(t *testing.T, src string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, _, err := eng.WriteSchema(ctx, "fuzz", src); err != nil {
		return err
	}
	for _, probe := range []string{"doc:1#p@user:u", "doc9#view@user:u", "t0:1#member@user:u"} {
		r, err := tuple.Parse(probe)
		if err != nil {
			continue
		}
		req := engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}
		_, _ = eng.Check(ctx, req)
	}
	return nil
}

// FuzzWriteSchema writes generated deep and long schemas (operator chains,
// parentheses, arrow chains across definitions, many definitions, deep
// and long caveat expressions) through the engine: it must never crash.
func FuzzWriteSchema(f *testing.F) {
	for shape := range uint8(numShapes) {
		f.Add(shape, uint16(3), []byte{0, 1, 2}, "")
		f.Add(shape, uint16(200), []byte{2}, "")
	}
	f.Add(uint8(shapeOperatorChain), uint16(20000), []byte{2}, "")
	f.Add(uint8(shapeParens), uint16(5000), []byte{}, "")
	f.Add(uint8(shapeCaveatDeep), uint16(5000), []byte{}, "")
	f.Add(uint8(shapeCaveatLong), uint16(30000), []byte{}, "")
	f.Fuzz(func(t *testing.T, shape uint8, n uint16, ops []byte, text string) {
		size := int(n)
		switch shape % numShapes {
		case shapeArrowChain, shapeHub, shapeManyDefinitions, shapeMixed, shapeComputedChain, shapePartials:
			size %= 1500 // each is a definition or more: keep an execution quick
		}
		_ = writeHostile(t, genHostileSchema(shape, size, ops, text))
	})
}

// TestHostileSchemas writes the large cases of each shape, beyond what
// fuzzing reaches quickly, and checks which are refused.
func TestHostileSchemas(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape uint8
		n     int
		ok    bool
	}{
		{"operator chain under the limit", shapeOperatorChain, 9_999, true},
		{"operator chain over the limit", shapeOperatorChain, 300_000, false},
		{"parentheses 100 deep", shapeParens, 99, true},
		{"parentheses 100,000 deep", shapeParens, 100_000, false},
		{"arrow chain of 3,000 definitions", shapeArrowChain, 3_000, true},
		{"hub of 2,000 types", shapeHub, 2_000, true},
		{"caveat nested 100,000 deep", shapeCaveatDeep, 100_000, false},
		{"caveat nested 40,000 deep", shapeCaveatDeep, 40_000, false},
		{"caveat of 20,000 operators", shapeCaveatLong, 20_000, false},
		{"caveat of 100,000 operators", shapeCaveatLong, 100_000, false},
		{"3,000 definitions", shapeManyDefinitions, 3_000, true},
		{"one definition of 20,000 chained permissions", shapeComputedChain, 20_000, true},
		{"partials doubling 40 times", shapePartials, 40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := writeHostile(t, genHostileSchema(tc.shape, tc.n, []byte{0, 2, 1}, ""))
			if (err == nil) != tc.ok {
				t.Fatalf("WriteSchema: error %v, want success %v", err, tc.ok)
			}
			if err != nil {
				t.Logf("refused: %.300s", err)
			}
		})
	}
}
