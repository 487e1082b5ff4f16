package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const caveatSchema = `
caveat ints(a int, b int) { a > b }
caveat either(a bool, b bool) { a || b }
caveat both(a bool, b bool) { a && b }
caveat unsigned(n uint) { n >= 3u }
caveat dbl(x double) { x > 1.5 }
caveat str(s string) { s.startsWith("ab") }
caveat raw(b bytes) { b == b"hi" }
caveat dur(d duration) { d > duration("1h") }
caveat ts(now timestamp, exp timestamp) { now < exp }
caveat lst(allowed list<string>, day string) { day in allowed }
caveat nums(xs list<int>) { xs.all(x, x > 0) }
caveat mp(m map<int>) { m["k"] == 7 }
caveat nested(m map<list<double>>) { m["k"][0] == 2.5 }
caveat ip(addr ipaddress) { addr.in_cidr("10.0.0.0/8") }
caveat anyv(v any) { v == 3 }
caveat unused(a int, spare string) { a == 1 }
caveat divide(a int, b int) { a / b == 1 }
caveat constant() { 1 < 2 }
`

func num(s string) json.Number { return json.Number(s) }

func TestCaveatEvaluate(t *testing.T) {
	s, err := Compile("caveats.zed", caveatSchema)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		caveat  string
		ctx     map[string]any
		want    CaveatResultKind
		missing []string
	}{
		{"ints", map[string]any{"a": num("2"), "b": num("1")}, CaveatTrue, nil},
		{"ints", map[string]any{"a": 1.0, "b": 2.0}, CaveatFalse, nil},
		{"ints", map[string]any{"a": int64(5), "b": 4}, CaveatTrue, nil},
		{"ints", map[string]any{"a": num("2")}, CaveatMissing, []string{"b"}},
		{"ints", map[string]any{}, CaveatMissing, []string{"a", "b"}},
		{"ints", nil, CaveatMissing, []string{"a", "b"}},
		{"ints", map[string]any{"a": nil, "b": num("1")}, CaveatMissing, []string{"a"}},
		{"either", map[string]any{"a": true}, CaveatTrue, nil},
		{"either", map[string]any{"b": true}, CaveatTrue, nil},
		{"either", map[string]any{"a": false}, CaveatMissing, []string{"b"}},
		{"both", map[string]any{"a": false}, CaveatFalse, nil},
		{"both", map[string]any{"a": true}, CaveatMissing, []string{"b"}},
		{"both", map[string]any{"a": true, "b": true}, CaveatTrue, nil},
		{"unsigned", map[string]any{"n": num("3")}, CaveatTrue, nil},
		{"unsigned", map[string]any{"n": 2.0}, CaveatFalse, nil},
		{"dbl", map[string]any{"x": num("1.75")}, CaveatTrue, nil},
		{"dbl", map[string]any{"x": num("1")}, CaveatFalse, nil},
		{"dbl", map[string]any{"x": 2.0}, CaveatTrue, nil},
		{"str", map[string]any{"s": "abc"}, CaveatTrue, nil},
		{"str", map[string]any{"s": "xbc"}, CaveatFalse, nil},
		{"raw", map[string]any{"b": "aGk="}, CaveatTrue, nil},
		{"raw", map[string]any{"b": []byte("hi")}, CaveatTrue, nil},
		{"raw", map[string]any{"b": "aGk"}, CaveatTrue, nil},
		{"raw", map[string]any{"b": "aGo="}, CaveatFalse, nil},
		{"dur", map[string]any{"d": "1h30m"}, CaveatTrue, nil},
		{"dur", map[string]any{"d": "59m"}, CaveatFalse, nil},
		{"dur", map[string]any{"d": 2 * time.Hour}, CaveatTrue, nil},
		{"ts", map[string]any{"now": "2026-01-01T00:00:00Z", "exp": "2026-06-01T00:00:00Z"}, CaveatTrue, nil},
		{"ts", map[string]any{"now": "2026-07-01T00:00:00+02:00", "exp": "2026-06-01T00:00:00Z"}, CaveatFalse, nil},
		{"ts", map[string]any{"now": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "exp": "2026-06-01T00:00:00.5Z"}, CaveatTrue, nil},
		{"ts", map[string]any{"now": "2026-01-01T00:00:00Z"}, CaveatMissing, []string{"exp"}},
		{"lst", map[string]any{"allowed": []any{"mon", "tue"}, "day": "tue"}, CaveatTrue, nil},
		{"lst", map[string]any{"allowed": []any{}, "day": "tue"}, CaveatFalse, nil},
		{"lst", map[string]any{"day": "tue"}, CaveatMissing, []string{"allowed"}},
		{"lst", map[string]any{"allowed": []string{"mon", "tue"}, "day": "tue"}, CaveatTrue, nil},
		{"nums", map[string]any{"xs": []int64{1, 2}}, CaveatTrue, nil},
		{"mp", map[string]any{"m": map[string]int{"k": 7}}, CaveatTrue, nil},
		{"nums", map[string]any{"xs": []any{num("1"), 2.0}}, CaveatTrue, nil},
		{"nums", map[string]any{"xs": []any{num("1"), num("-2")}}, CaveatFalse, nil},
		{"mp", map[string]any{"m": map[string]any{"k": num("7")}}, CaveatTrue, nil},
		{"mp", map[string]any{"m": map[string]any{"k": 8.0}}, CaveatFalse, nil},
		{"nested", map[string]any{"m": map[string]any{"k": []any{num("2.5")}}}, CaveatTrue, nil},
		{"ip", map[string]any{"addr": "10.1.2.3"}, CaveatTrue, nil},
		{"ip", map[string]any{"addr": "192.168.0.1"}, CaveatFalse, nil},
		{"ip", map[string]any{"addr": "::ffff:10.0.0.1"}, CaveatTrue, nil},
		{"anyv", map[string]any{"v": num("3")}, CaveatTrue, nil},
		{"anyv", map[string]any{"v": "3"}, CaveatFalse, nil},
		{"unused", map[string]any{"a": num("1")}, CaveatTrue, nil},
		{"unused", map[string]any{"a": num("1"), "extra": "ignored"}, CaveatTrue, nil},
		{"constant", nil, CaveatTrue, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.caveat, tc.ctx), func(t *testing.T) {
			got, err := s.Caveats[tc.caveat].Evaluate(tc.ctx)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if got.Kind != tc.want || !reflect.DeepEqual(got.Missing, tc.missing) {
				t.Errorf("got %+v, want kind %d missing %v", got, tc.want, tc.missing)
			}
		})
	}
}

func TestCaveatEvaluateErrors(t *testing.T) {
	s, err := Compile("caveats.zed", caveatSchema)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		caveat string
		ctx    map[string]any
		param  string // "" for an evaluation error
		reason string
	}{
		{"ints", map[string]any{"a": "2", "b": num("1")}, "a", `want an integer, got string "2"`},
		{"ints", map[string]any{"a": num("2.5"), "b": num("1")}, "a", "want an integer, got number 2.5"},
		{"ints", map[string]any{"a": 2.5, "b": num("1")}, "a", "want an integer, got number 2.5"},
		{"ints", map[string]any{"a": num("1"), "b": num("99999999999999999999")}, "b", "want an integer, got number 99999999999999999999"},
		{"unsigned", map[string]any{"n": num("-1")}, "n", "want a non-negative integer, got number -1"},
		{"either", map[string]any{"a": "true"}, "a", `want a bool, got string "true"`},
		{"dbl", map[string]any{"x": "1.5"}, "x", `want a number, got string "1.5"`},
		{"str", map[string]any{"s": 3.0}, "s", "want a string, got number 3"},
		{"raw", map[string]any{"b": "not base64!"}, "b", "not valid base64"},
		{"dur", map[string]any{"d": "soon"}, "d", "not a duration"},
		{"dur", map[string]any{"d": 5.0}, "d", "want a duration string"},
		{"ts", map[string]any{"now": "yesterday", "exp": "2026-06-01T00:00:00Z"}, "now", "not an RFC 3339 timestamp"},
		{"lst", map[string]any{"allowed": "mon", "day": "mon"}, "allowed", `want a list, got string "mon"`},
		{"nums", map[string]any{"xs": []any{num("1"), "2"}}, "xs", `element 1: want an integer, got string "2"`},
		{"mp", map[string]any{"m": []any{}}, "m", "want an object, got a list"},
		{"mp", map[string]any{"m": map[string]any{"k": true}}, "m", `key "k": want an integer, got bool true`},
		{"ip", map[string]any{"addr": "10.0.0.300"}, "addr", "not an IP address"},
		{"divide", map[string]any{"a": num("1"), "b": num("0")}, "", "division by zero"},
		{"mp", map[string]any{"m": map[string]any{}}, "", "no such key"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.caveat, tc.ctx), func(t *testing.T) {
			_, err := s.Caveats[tc.caveat].Evaluate(tc.ctx)
			if err == nil {
				t.Fatal("Evaluate succeeded")
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", err, tc.reason)
			}
			if tc.param == "" {
				if !errors.Is(err, ErrCaveatEval) {
					t.Errorf("error %v is not ErrCaveatEval", err)
				}
				return
			}
			var pe *CaveatParamError
			if !errors.As(err, &pe) || !errors.Is(err, ErrCaveatParam) {
				t.Fatalf("error %v is not a *CaveatParamError", err)
			}
			if pe.Param != tc.param || pe.Caveat != tc.caveat {
				t.Errorf("error names %s.%s, want %s.%s", pe.Caveat, pe.Param, tc.caveat, tc.param)
			}
		})
	}
}

func TestCaveatNotCompiled(t *testing.T) {
	_, err := (&Caveat{Name: "x"}).Evaluate(nil)
	if !errors.Is(err, ErrCaveatNotCompiled) {
		t.Fatalf("got %v, want ErrCaveatNotCompiled", err)
	}
}

func TestCaveatConcurrent(t *testing.T) {
	s, err := Compile("caveats.zed", caveatSchema)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Caveats["either"]
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				a := (g+i)%2 == 0
				r, err := c.Evaluate(map[string]any{"a": a, "b": false})
				if err != nil {
					errs <- err
					return
				}
				if (r.Kind == CaveatTrue) != a {
					errs <- fmt.Errorf("a=%v gave %+v", a, r)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
