package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// retiredSpellings are flag names replaced by one vocabulary: they keep
// working as hidden aliases (cli.Alias, cli.Hide), but no doc and no -h
// output may teach them.
var retiredSpellings = map[string]string{
	"store":    "datastore",
	"addr":     "address",
	"key-file": "token",
}

// TestDocsUseOneVocabulary greps the README and every Markdown file under
// docs/ and examples/ for the retired spellings of flags.
func TestDocsUseOneVocabulary(t *testing.T) {
	files := []string{"../../README.md"}
	for _, pattern := range []string{"../../docs/*.md", "../../examples/*/*.md"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %q: wrong directory?", files)
	}
	for old, now := range retiredSpellings {
		re := regexp.MustCompile("(^|[^A-Za-z0-9_-])--?" + regexp.QuoteMeta(old) + "([ =`,)]|$)")
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(data), "\n") {
				if re.MatchString(line) {
					t.Errorf("%s:%d: -%s is spelled -%s now: %s", f, i+1, old, now, strings.TrimSpace(line))
				}
			}
		}
	}
}

// TestHelpHidesAliases: the old spellings work but -h does not list them.
func TestHelpHidesAliases(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"bench", "run"}} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), append(cmd, "-h"), &stdout, &stderr); code != 0 {
			t.Fatalf("%q -h: exit %d", cmd, code)
		}
		for old := range retiredSpellings {
			if strings.Contains(stdout.String(), "\n  -"+old+" ") || strings.Contains(stdout.String(), "\n  -"+old+"\n") {
				t.Errorf("%q -h lists the retired -%s", cmd, old)
			}
		}
		if !strings.HasPrefix(stdout.String(), "usage: pemba "+strings.Join(cmd, " ")+" [flags]\n\nflags:\n") {
			t.Errorf("%q -h does not start with the shared usage format: %q", cmd, stdout.String()[:min(80, stdout.Len())])
		}
	}
	// -store still selects the datastore (TestServeUsage: -store mysql).
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"serve", "-listen", "127.0.0.1:0", "-store", "mysql"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown -datastore "mysql"`) {
		t.Errorf("serve -store mysql: exit %d, stderr %q; the alias should set -datastore", code, stderr.String())
	}
}
