package schema

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// paramKind is a caveat parameter type.
type paramKind uint8

const (
	kindInt paramKind = iota
	kindUint
	kindBool
	kindString
	kindDouble
	kindBytes
	kindDuration
	kindTimestamp
	kindList
	kindMap
	kindIPAddress
	kindAny
)

var scalarKinds = map[string]paramKind{
	"int": kindInt, "uint": kindUint, "bool": kindBool, "string": kindString,
	"double": kindDouble, "bytes": kindBytes, "duration": kindDuration,
	"timestamp": kindTimestamp, "ipaddress": kindIPAddress, "any": kindAny,
}

// paramType is a resolved caveat parameter type.
type paramType struct {
	kind paramKind
	elem *paramType // list and map element type; map keys are strings
	name string     // as written, canonical
}

type posError struct {
	pos Pos
	msg string
}

// resolveParamType validates a written type.
func resolveParamType(t *TypeExpr) (*paramType, *posError) {
	name := t.Name.Name
	switch name {
	case "list", "map":
		if len(t.Args) != 1 {
			return nil, &posError{t.Pos(), fmt.Sprintf("type %s takes exactly one type argument, as in %s<string>", name, name)}
		}
		elem, err := resolveParamType(t.Args[0])
		if err != nil {
			return nil, err
		}
		k := kindList
		if name == "map" {
			k = kindMap
		}
		return &paramType{kind: k, elem: elem, name: t.String()}, nil
	}
	k, ok := scalarKinds[name]
	if !ok {
		return nil, &posError{t.Pos(), fmt.Sprintf("unknown caveat parameter type %q (known: int, uint, bool, string, double, bytes, duration, timestamp, list<T>, map<T>, ipaddress, any)", name)}
	}
	if len(t.Args) > 0 {
		return nil, &posError{t.Args[0].Pos(), fmt.Sprintf("type %s takes no type arguments", name)}
	}
	return &paramType{kind: k, name: name}, nil
}

func (t *paramType) celType() *cel.Type {
	switch t.kind {
	case kindInt:
		return cel.IntType
	case kindUint:
		return cel.UintType
	case kindBool:
		return cel.BoolType
	case kindString, kindIPAddress:
		return cel.StringType
	case kindDouble:
		return cel.DoubleType
	case kindBytes:
		return cel.BytesType
	case kindDuration:
		return cel.DurationType
	case kindTimestamp:
		return cel.TimestampType
	case kindList:
		return cel.ListType(t.elem.celType())
	case kindMap:
		return cel.MapType(cel.StringType, t.elem.celType())
	}
	return cel.DynType
}

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
		c.errs.Add(Position{Filename: c.f.Name}, fmt.Sprintf("cannot build the CEL environment: %v", err))
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
			c.errorf(d.Lbrace, "caveat %q has an empty expression", d.Name.Name)
			continue
		}
		env, err := base.Extend(opts...)
		if err != nil {
			c.errorf(d.Name.Pos(), "caveat %q: %v", d.Name.Name, err)
			continue
		}
		ast, iss := env.Compile(d.Expr)
		if iss.Err() != nil {
			for _, e := range iss.Errors() {
				c.errorf(celPos(d, e.Location.Line(), e.Location.Column()), "caveat %q: %s", d.Name.Name, e.Message)
			}
			continue
		}
		if !ast.OutputType().IsExactType(cel.BoolType) {
			c.errorf(d.ExprPos+Pos(leadingSpace(d.Expr)), "caveat %q: the expression has type %s; it must be bool", d.Name.Name, ast.OutputType())
			continue
		}
		full, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			c.errorf(d.Name.Pos(), "caveat %q: %v", d.Name.Name, err)
			continue
		}
		partial, err := env.Program(ast, cel.EvalOptions(cel.OptPartialEval))
		if err != nil {
			c.errorf(d.Name.Pos(), "caveat %q: %v", d.Name.Name, err)
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
		cd.caveat.program = &caveatProgram{caveat: d.Name.Name, names: names, types: cd.types, used: used, full: full, partial: partial}
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

// convert turns a JSON-decoded or native Go value into a CEL value of t.
func (t *paramType) convert(v any) (ref.Val, error) {
	switch t.kind {
	case kindInt:
		n, err := toInt(v)
		if err != nil {
			return nil, err
		}
		return types.Int(n), nil
	case kindUint:
		n, err := toUint(v)
		if err != nil {
			return nil, err
		}
		return types.Uint(n), nil
	case kindDouble:
		f, err := toFloat(v)
		if err != nil {
			return nil, err
		}
		return types.Double(f), nil
	case kindBool:
		b, ok := v.(bool)
		if !ok {
			return nil, wrongType("a bool", v)
		}
		return types.Bool(b), nil
	case kindString:
		s, ok := v.(string)
		if !ok {
			return nil, wrongType("a string", v)
		}
		return types.String(s), nil
	case kindBytes:
		switch b := v.(type) {
		case []byte:
			return types.Bytes(b), nil
		case string:
			d, err := decodeBase64(b)
			if err != nil {
				return nil, fmt.Errorf("not valid base64: %w", err)
			}
			return types.Bytes(d), nil
		}
		return nil, wrongType("base64 text", v)
	case kindDuration:
		switch d := v.(type) {
		case time.Duration:
			return types.Duration{Duration: d}, nil
		case string:
			pd, err := time.ParseDuration(d)
			if err != nil {
				return nil, fmt.Errorf("not a duration such as \"1h30m\": %w", err)
			}
			return types.Duration{Duration: pd}, nil
		}
		return nil, wrongType("a duration string such as \"1h30m\"", v)
	case kindTimestamp:
		switch ts := v.(type) {
		case time.Time:
			return types.Timestamp{Time: ts}, nil
		case string:
			pt, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return nil, fmt.Errorf("not an RFC 3339 timestamp: %w", err)
			}
			return types.Timestamp{Time: pt}, nil
		}
		return nil, wrongType("an RFC 3339 timestamp string", v)
	case kindIPAddress:
		s, ok := v.(string)
		if !ok {
			return nil, wrongType("an IP address string", v)
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("not an IP address: %w", err)
		}
		return types.String(a.String()), nil
	case kindList:
		l, ok := v.([]any)
		if !ok {
			if l, ok = reflectList(v); !ok {
				return nil, wrongType("a list", v)
			}
		}
		out := make([]ref.Val, len(l))
		for i, e := range l {
			cv, err := t.elem.convert(e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = cv
		}
		return types.NewRefValList(types.DefaultTypeAdapter, out), nil
	case kindMap:
		m, ok := v.(map[string]any)
		if !ok {
			if m, ok = reflectMap(v); !ok {
				return nil, wrongType("an object", v)
			}
		}
		out := make(map[ref.Val]ref.Val, len(m))
		for k, e := range m {
			cv, err := t.elem.convert(e)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[types.String(k)] = cv
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, out), nil
	}
	return types.DefaultTypeAdapter.NativeToValue(normalizeAny(v)), nil
}

// reflectList accepts native Go slices and arrays ([]string, []int64, ...)
// from Go callers.
func reflectList(v any) ([]any, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, false // []byte is bytes, not a list
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// reflectMap accepts native Go maps with string keys (map[string]int, ...).
func reflectMap(v any) (map[string]any, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	out := make(map[string]any, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		out[it.Key().String()] = it.Value().Interface()
	}
	return out, true
}

// decodeBase64 accepts standard and URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	d, err := base64.StdEncoding.DecodeString(s)
	if err == nil {
		return d, nil
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err2 := enc.DecodeString(s); err2 == nil {
			return d, nil
		}
	}
	return nil, err
}

func wrongType(want string, v any) error {
	return fmt.Errorf("want %s, got %s", want, describe(v))
}

func describe(v any) string {
	switch v := v.(type) {
	case json.Number:
		return "number " + v.String()
	case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprintf("number %v", v)
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("bool %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func toInt(v any) (int64, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("want an integer, got number %s", n)
		}
		return i, nil
	case float64:
		if n != math.Trunc(n) || n < -(1<<63) || n >= 1<<63 {
			return 0, fmt.Errorf("want an integer, got number %v", n)
		}
		return int64(n), nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	case uint64:
		if n > math.MaxInt64 {
			return 0, fmt.Errorf("number %d overflows int", n)
		}
		return int64(n), nil
	}
	return 0, wrongType("an integer", v)
}

func toUint(v any) (uint64, error) {
	switch n := v.(type) {
	case json.Number:
		u, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("want a non-negative integer, got number %s", n)
		}
		return u, nil
	case float64:
		if n != math.Trunc(n) || n < 0 || n >= 1<<64 {
			return 0, fmt.Errorf("want a non-negative integer, got number %v", n)
		}
		return uint64(n), nil
	case uint64:
		return n, nil
	case uint:
		return uint64(n), nil
	case int:
		if n < 0 {
			return 0, fmt.Errorf("want a non-negative integer, got number %d", n)
		}
		return uint64(n), nil
	case int64:
		if n < 0 {
			return 0, fmt.Errorf("want a non-negative integer, got number %d", n)
		}
		return uint64(n), nil
	}
	return 0, wrongType("a non-negative integer", v)
}

func toFloat(v any) (float64, error) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return 0, fmt.Errorf("want a number, got %s", n)
		}
		return f, nil
	case float64:
		return n, nil
	case float32:
		return float64(n), nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	}
	return 0, wrongType("a number", v)
}

// normalizeAny converts json.Number (to int64 when integral, else float64)
// throughout a value of type any.
func normalizeAny(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeAny(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeAny(e)
		}
		return out
	}
	return v
}
