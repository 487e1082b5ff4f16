package schema

// This file holds caveat parameter types: their validation, their CEL
// types, and the conversion of JSON-decoded context values to CEL values.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
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
