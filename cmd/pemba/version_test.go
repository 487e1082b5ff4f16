package main

import (
	"bytes"
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/pemba-authz/pemba/engine/store/pebblestore"
	"github.com/pemba-authz/pemba/engine/store/pgstore"
)

func TestVersionText(t *testing.T) {
	formats := map[string]int{"postgres": 2, "pebble": 3}
	built := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "9d996e6"}, {Key: "vcs.time", Value: "2026-12-04T23:59:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"source build", "", built,
			"pemba (devel)\ncommit: 9d996e6 (2026-12-04T23:59:00Z), modified\ngo: go1.26.8\nstorage formats: pebble 3, postgres 2\n"},
		{"stamped release", "v1.2.3", built,
			"pemba v1.2.3\ncommit: 9d996e6 (2026-12-04T23:59:00Z), modified\ngo: go1.26.8\nstorage formats: pebble 3, postgres 2\n"},
		{"no build info", "", nil,
			"pemba unknown\ncommit: unknown\ngo: unknown\nstorage formats: pebble 3, postgres 2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionText(tc.stamped, tc.info, formats); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestVersionCommand: pemba version and --version print the storage
// formats the backends really write.
func TestVersionCommand(t *testing.T) {
	want := fmt.Sprintf("storage formats: pebble %d, postgres %d\n", pebblestore.FormatVersion, pgstore.SchemaVersion())
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		if !strings.HasPrefix(out.String(), "pemba ") || !strings.HasSuffix(out.String(), want) {
			t.Errorf("%v printed:\n%s\nwant it to start with \"pemba \" and end with %q", args, out.String(), want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version", "extra"}, &out, &errOut); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}
