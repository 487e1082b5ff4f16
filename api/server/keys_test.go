package server

import (
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	keys, err := ParseKeys(strings.NewReader("# services\n\nhr-service  " + secretA + "\n  crm " + secretB + "  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != (Key{Name: "hr-service", Secret: secretA}) || keys[1] != (Key{Name: "crm", Secret: secretB}) {
		t.Errorf("keys = %v", keys)
	}
	for _, bad := range []string{"only-a-name\n", "name s3cr3t-value extra\n"} {
		_, err := ParseKeys(strings.NewReader(bad))
		if err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseKeys(%q) = %v, want an error naming line 1", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}
