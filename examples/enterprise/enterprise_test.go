package enterprise

import (
	"strings"
	"testing"
)

// TestSchemaWithoutInvariants: every invariant line and "use invariants"
// go, nothing else does.
func TestSchemaWithoutInvariants(t *testing.T) {
	full, stripped := Schema(), SchemaWithoutInvariants()
	n := strings.Count(full, "\tinvariant ")
	if n < 5 || !strings.Contains(full, "use invariants\n") {
		t.Fatalf("schema.zed declares %d invariants", n)
	}
	for line := range strings.Lines(stripped) {
		if t0 := strings.TrimSpace(line); strings.HasPrefix(t0, "invariant ") || t0 == "use invariants" {
			t.Fatalf("left: %s", line)
		}
	}
	if got, want := strings.Count(full, "\n")-strings.Count(stripped, "\n"), n+1; got != want {
		t.Fatalf("%d lines dropped, want %d", got, want)
	}
}
