package schema

import (
	"encoding/json"
	"os"
	"testing"
)

func readEnterprise(b *testing.B) string {
	src, err := os.ReadFile("testdata/enterprise.zed")
	if err != nil {
		b.Fatal(err)
	}
	return string(src)
}

func BenchmarkParse(b *testing.B) {
	src := readEnterprise(b)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("enterprise.zed", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	src := readEnterprise(b)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("enterprise.zed", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	f, err := Parse("enterprise.zed", readEnterprise(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Format(f)
	}
}

func BenchmarkCaveatEvaluate(b *testing.B) {
	s, err := Compile("enterprise.zed", readEnterprise(b))
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		caveat string
		ctx    map[string]any
		want   CaveatResultKind
	}{
		{"license_valid/all-params", "license_valid", map[string]any{
			"now": "2026-11-24T12:00:00Z", "expires_at": "2027-01-01T00:00:00Z",
			"seats_used": json.Number("12"), "seats_bought": json.Number("50"),
		}, CaveatTrue},
		{"license_valid/missing", "license_valid", map[string]any{
			"now": "2026-11-24T12:00:00Z", "seats_used": json.Number("12"), "seats_bought": json.Number("50"),
		}, CaveatMissing},
		{"business_hours/all-params", "business_hours", map[string]any{
			"now": "2026-11-24T03:00:00Z", "tz_offset": "8h", "allowed_days": []any{1.0, 2.0, 3.0, 4.0, 5.0},
		}, CaveatTrue},
		{"from_office/all-params", "from_office", map[string]any{
			"ip": "10.20.30.40", "office_cidrs": []any{"192.168.0.0/16", "10.0.0.0/8"}, "strict": true,
		}, CaveatTrue},
		{"from_office/partial-decided", "from_office", map[string]any{"strict": false}, CaveatTrue},
	}
	for _, tc := range cases {
		c := s.Caveats[tc.caveat]
		if r, err := c.Evaluate(tc.ctx); err != nil || r.Kind != tc.want {
			b.Fatalf("%s: got %+v, %v; want kind %d", tc.name, r, err, tc.want)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Evaluate(tc.ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
