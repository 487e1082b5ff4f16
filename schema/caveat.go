package schema

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// baseEnv is the CEL environment every caveat extends: the standard
// library plus in_cidr. Built once; cel.Env is immutable and safe to share.
var baseEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Function("in_cidr",
			cel.MemberOverload("string_in_cidr_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(inCIDR))),
	)
})

// inCIDR implements ip.in_cidr("10.0.0.0/8") for ipaddress parameters
// (which CEL sees as strings).
func inCIDR(lhs, rhs ref.Val) ref.Val {
	ip, ok1 := lhs.(types.String)
	cidr, ok2 := rhs.(types.String)
	if !ok1 || !ok2 {
		return types.NewErr("in_cidr: expected string arguments")
	}
	addr, err := netip.ParseAddr(string(ip))
	if err != nil {
		return types.NewErr("in_cidr: invalid IP address %q", string(ip))
	}
	prefix, err := netip.ParsePrefix(string(cidr))
	if err != nil {
		return types.NewErr("in_cidr: invalid CIDR %q", string(cidr))
	}
	return types.Bool(prefix.Contains(addr.Unmap()))
}

// caveatProgram is the compiled, immutable evaluation state of a caveat.
type caveatProgram struct {
	caveat  string
	names   []string
	types   []*paramType
	used    []bool      // whether the expression references each parameter
	full    cel.Program // all parameters present: optimised, no unknowns
	partial cel.Program // some missing: partial evaluation
	acts    sync.Pool   // of *activation, to keep Evaluate's allocations down
}

// compileCaveats type-checks every caveat expression and builds its
// programs.
func (c *checker) compileCaveats() {
	if len(c.caveats) == 0 {
		return
	}
	base, err := baseEnv()
	if err != nil {
		c.errs.Add(Position{Filename: c.files[0].Name}, fmt.Sprintf("cannot build the CEL environment: %v", err))
		return
	}
	for _, cd := range c.caveats {
		complete := len(cd.types) == len(cd.decl.Params)
		opts := make([]cel.EnvOption, 0, len(cd.types))
		for i, t := range cd.types {
			if t == nil {
				complete = false
				continue
			}
			opts = append(opts, cel.Variable(cd.caveat.Params[i].Name, t.celType()))
		}
		if !complete {
			continue // a parameter type is invalid; already reported
		}
		d := cd.decl
		if strings.TrimSpace(d.Expr) == "" {
			c.errorf(d.Lbrace, "caveat %q has an empty expression", d.Name.String())
			continue
		}
		env, err := base.Extend(opts...)
		if err != nil {
			c.errorf(d.Name.Pos(), "caveat %q: %v", d.Name.String(), err)
			continue
		}
		ast, iss := env.Compile(d.Expr)
		if iss.Err() != nil {
			for _, e := range iss.Errors() {
				c.errorf(celPos(d, e.Location.Line(), e.Location.Column()), "caveat %q: %s", d.Name.String(), e.Message)
			}
			continue
		}
		if !ast.OutputType().IsExactType(cel.BoolType) {
			c.errorf(d.ExprPos+Pos(leadingSpace(d.Expr)), "caveat %q: the expression has type %s; it must be bool", d.Name.String(), ast.OutputType())
			continue
		}
		full, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			c.errorf(d.Name.Pos(), "caveat %q: %v", d.Name.String(), err)
			continue
		}
		partial, err := env.Program(ast, cel.EvalOptions(cel.OptPartialEval))
		if err != nil {
			c.errorf(d.Name.Pos(), "caveat %q: %v", d.Name.String(), err)
			continue
		}
		refs := map[string]bool{}
		for _, r := range ast.NativeRep().ReferenceMap() {
			if len(r.OverloadIDs) == 0 {
				refs[r.Name] = true
			}
		}
		names := make([]string, len(cd.caveat.Params))
		used := make([]bool, len(cd.caveat.Params))
		for i, p := range cd.caveat.Params {
			names[i] = p.Name
			used[i] = refs[p.Name]
		}
		cd.caveat.program = &caveatProgram{caveat: d.Name.String(), names: names, types: cd.types, used: used, full: full, partial: partial}
	}
}

func leadingSpace(s string) int { return len(s) - len(strings.TrimLeft(s, " \t\r\n")) }

// celPos maps a CEL location (1-based line, 0-based column in characters,
// relative to the expression text) to a position in the schema source.
func celPos(d *CaveatDecl, line, col int) Pos {
	if line < 1 {
		return d.ExprPos + Pos(leadingSpace(d.Expr))
	}
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(d.Expr[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	for ; col > 0 && off < len(d.Expr) && d.Expr[off] != '\n'; col-- {
		_, n := utf8.DecodeRuneInString(d.Expr[off:])
		off += n
	}
	return d.ExprPos + Pos(off)
}

// Evaluate runs the caveat against a context of parameter values, as
// decoded from JSON (json.Number or float64 for numbers, string, bool,
// []any, map[string]any) or as native Go values (int64, time.Time, ...).
// Values are converted to the declared parameter types: timestamps from
// RFC 3339 strings, durations from strings such as "1h30m", bytes from
// base64, ipaddress from a textual IP address. Keys that are not parameters
// are ignored; a nil value counts as absent, and parameters the expression
// does not use are never required.
//
// When parameters are absent and the expression cannot be decided without
// them, the result is CaveatMissing with the sorted names of the absent
// parameters the decision depends on; partial evaluation means "a || b"
// with only a=true still yields CaveatTrue. A value of the wrong type
// yields a *CaveatParamError (errors.Is ErrCaveatParam); a runtime failure
// of the expression yields an error wrapping ErrCaveatEval.
//
// Evaluate is safe for concurrent use.
func (c *Caveat) Evaluate(ctx map[string]any) (CaveatResult, error) {
	p := c.program
	if p == nil {
		return CaveatResult{}, fmt.Errorf("caveat %q: %w", c.Name, ErrCaveatNotCompiled)
	}
	act, _ := p.acts.Get().(*activation)
	if act == nil {
		act = &activation{names: p.names, vals: make([]ref.Val, len(p.names))}
	}
	defer p.release(act)
	var missing []string
	for i, name := range p.names {
		v, ok := ctx[name]
		if !ok || v == nil {
			if p.used[i] {
				missing = append(missing, name)
			}
			continue
		}
		cv, err := p.types[i].convert(v)
		if err != nil {
			return CaveatResult{}, &CaveatParamError{Caveat: c.Name, Param: name, Type: p.types[i].name, Reason: err.Error()}
		}
		act.vals[i] = cv
	}
	if len(missing) == 0 {
		out, _, err := p.full.Eval(act)
		return result(c.Name, out, err)
	}
	patterns := make([]*cel.AttributePatternType, len(missing))
	for i, m := range missing {
		patterns[i] = cel.AttributePattern(m)
	}
	pact, err := cel.PartialVars(act, patterns...)
	if err != nil {
		return CaveatResult{}, fmt.Errorf("caveat %q: %w: %v", c.Name, ErrCaveatEval, err)
	}
	out, _, err := p.partial.Eval(pact)
	if err == nil {
		if u, ok := out.(*types.Unknown); ok {
			return CaveatResult{Kind: CaveatMissing, Missing: unknownNames(u, missing)}, nil
		}
	}
	return result(c.Name, out, err)
}

// release clears an activation (stale values must never be seen by a later
// evaluation, nor kept alive) and returns it to the pool.
func (p *caveatProgram) release(a *activation) {
	clear(a.vals)
	p.acts.Put(a)
}

func result(name string, out ref.Val, err error) (CaveatResult, error) {
	if err != nil {
		return CaveatResult{}, fmt.Errorf("caveat %q: %w: %v", name, ErrCaveatEval, err)
	}
	switch v := out.(type) {
	case types.Bool:
		if v {
			return CaveatResult{Kind: CaveatTrue}, nil
		}
		return CaveatResult{Kind: CaveatFalse}, nil
	case *types.Err:
		return CaveatResult{}, fmt.Errorf("caveat %q: %w: %v", name, ErrCaveatEval, v)
	}
	return CaveatResult{}, fmt.Errorf("caveat %q: %w: result is %v, not bool", name, ErrCaveatEval, out.Type())
}

// unknownNames lists the variables an unknown result depends on, sorted;
// when CEL cannot say (an unknown produced by a function), every missing
// parameter.
func unknownNames(u *types.Unknown, missing []string) []string {
	set := map[string]bool{}
	for _, id := range u.IDs() {
		trails, _ := u.GetAttributeTrails(id)
		for _, t := range trails {
			if v := t.Variable(); v != "" {
				set[v] = true
			}
		}
	}
	if len(set) == 0 {
		out := append([]string(nil), missing...)
		sort.Strings(out)
		return out
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// activation binds parameter values for one evaluation; parameters are few,
// so a linear scan beats a map.
type activation struct {
	names []string
	vals  []ref.Val
}

func (a *activation) ResolveName(name string) (any, bool) {
	for i, n := range a.names {
		if n == name {
			if a.vals[i] == nil {
				return nil, false
			}
			return a.vals[i], true
		}
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
