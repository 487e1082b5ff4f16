package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParseKeys reads preshared keys as pemba serve's -keys-file holds them,
// in one of two formats (docs/operations.md, "Keys, scopes and tenants"):
//
// Plain: one "name secret" pair per line; blank lines and lines starting
// with "#" are skipped. Each key holds every scope and no tenant.
//
// YAML: a document whose first statement is "keys:", a list of keys with
// name, secret, scopes, an optional tenant and optional limits:
//
//	keys:
//	  - name: acme-app
//	    secret: "..."
//	    scopes: [check, read_relationships, write_relationships]
//	    tenant: acme/
//	    limits: {requests_per_second: 100, burst: 200, concurrent: 16, max_lookup_limit: 1000, streams: 8}
//
// Errors name the line (and the key), never the secret.
func ParseKeys(r io.Reader) ([]Key, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("server: read keys: %w", err)
	}
	if isYAMLKeys(data) {
		return parseYAMLKeys(data)
	}
	return parsePlainKeys(data)
}

// isYAMLKeys reports whether the first line that is neither blank nor a
// comment starts the YAML format: "keys:" can never be a plain line (it
// has one field).
func isYAMLKeys(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") || text == "---" {
			continue
		}
		return strings.HasPrefix(text, "keys:")
	}
	return false
}

func parsePlainKeys(data []byte) ([]Key, error) {
	var keys []Key
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("server: keys line %d: want \"name secret\", found %d fields", line, len(fields))
		}
		keys = append(keys, Key{Name: fields[0], Secret: fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("server: read keys: %w", err)
	}
	return keys, nil
}

// yamlKeys is the YAML format's document.
type yamlKeys struct {
	Keys []yamlKey `yaml:"keys"`
}

type yamlKey struct {
	Name   string     `yaml:"name"`
	Secret string     `yaml:"secret"`
	Scopes []string   `yaml:"scopes"`
	Tenant string     `yaml:"tenant"`
	Limits yamlLimits `yaml:"limits"`
}

type yamlLimits struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	Concurrent        int     `yaml:"concurrent"`
	MaxLookupLimit    int     `yaml:"max_lookup_limit"`
	Streams           int     `yaml:"streams"`
}

func parseYAMLKeys(data []byte) ([]Key, error) {
	var doc yamlKeys
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("server: keys file: %s", redactYAMLError(err))
	}
	// The lines of the keys, for errors: decoding the same bytes again
	// as nodes (a struct decode keeps no positions, and a node decode
	// cannot refuse unknown fields).
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	lines := keyLines(&root)
	var keys []Key
	for i, y := range doc.Keys {
		at := "server: keys file"
		if i < len(lines) {
			at += fmt.Sprintf(" line %d", lines[i])
		}
		if y.Name == "" {
			return nil, fmt.Errorf("%s: key has no name", at)
		}
		at += fmt.Sprintf(" (key %q)", y.Name)
		if y.Secret == "" {
			return nil, fmt.Errorf("%s: no secret", at)
		}
		if len(y.Scopes) == 0 {
			return nil, fmt.Errorf("%s: no scopes (give e.g. scopes: [check]; admin gives every scope)", at)
		}
		scopes, err := ParseScopes(y.Scopes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if err := CheckTenant(y.Tenant); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		lim := KeyLimits(y.Limits)
		if err := lim.check(); err != nil {
			return nil, fmt.Errorf("%s: limits: %w", at, err)
		}
		keys = append(keys, Key{Name: y.Name, Secret: y.Secret, Scopes: scopes, Tenant: y.Tenant, Limits: lim})
	}
	return keys, nil
}

// keyLines returns the line of each item of the document's keys list.
func keyLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "keys" {
			var lines []int
			for _, item := range m.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}

// redactYAMLError keeps the position and kind of a YAML error; yaml.v3
// quotes the offending value, which may be a secret.
func redactYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var out []string
		for _, e := range te.Errors {
			// "line 3: cannot unmarshal !!str `abc` into int"
			if i := strings.Index(e, "`"); i >= 0 {
				if j := strings.LastIndex(e, "`"); j > i {
					e = e[:i] + "(value)" + e[j+1:]
				}
			}
			out = append(out, e)
		}
		return strings.Join(out, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
