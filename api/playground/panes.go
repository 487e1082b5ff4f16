package playground

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Panes are the three editors of the page. Together they are one
// validation file: Compose joins them, Split takes one apart.
type Panes struct {
	// Schema is the schema text.
	Schema string `json:"schema"`
	// Relationships holds one relationship per line (comments allowed),
	// the value of the file's relationships key.
	Relationships string `json:"relationships"`
	// Assertions is YAML holding the file's other keys: assertions
	// (assertTrue, assertFalse, assertCaveated) and validation.
	Assertions string `json:"assertions"`
}

// Pane names, as the JSON answers use them.
const (
	paneSchema        = "schema"
	paneRelationships = "relationships"
	paneAssertions    = "assertions"
)

// layout says where each pane starts in a composed file, so that a
// problem reported at a line of the file is shown at its pane's line.
type layout struct {
	relKey      int // line of the relationships key
	assertStart int // line of the assertions pane's first line
}

// locate maps a line of the composed file to a pane and a line in it.
// The key lines map to line 1 of the pane that follows them.
func (l layout) locate(line int) (string, int) {
	switch {
	case line < l.relKey:
		return paneSchema, max(line-1, 1)
	case line < l.assertStart:
		return paneRelationships, max(line-l.relKey, 1)
	}
	return paneAssertions, line - l.assertStart + 1
}

// Compose joins the panes into one validation file, in the format that
// `pemba validate` runs: the schema and the relationships as literal
// blocks, then the assertions pane as written.
func (p Panes) Compose() string {
	s, _ := p.compose()
	return s
}

func (p Panes) compose() (string, layout) {
	var b strings.Builder
	line := 1
	block := func(key, text string) {
		lines := strings.Split(normalize(text), "\n")
		// An explicit indentation indicator keeps text whose first line
		// starts with a space from being read with a deeper indentation.
		indicator := "|-"
		for _, l := range lines {
			if strings.TrimSpace(l) == "" {
				continue
			}
			if l[0] == ' ' {
				indicator = "|2-"
			}
			break
		}
		fmt.Fprintf(&b, "%s: %s\n", key, indicator)
		line++
		for _, l := range lines {
			if strings.TrimSpace(l) == "" {
				// No trailing spaces, and no blank line that is more
				// indented than the content.
				b.WriteByte('\n')
			} else {
				b.WriteString("  " + l + "\n")
			}
			line++
		}
	}
	block("schema", p.Schema)
	lay := layout{relKey: line}
	block("relationships", p.Relationships)
	lay.assertStart = line
	b.WriteString(normalize(p.Assertions))
	out := b.String()
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out, lay
}

// normalize turns CRLF line ends into LF and drops the final line end, so
// that a pane's lines map one to one onto the file's.
func normalize(s string) string {
	return strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

// Split takes a validation file apart into panes: the schema (inline, or
// the text given for a file that names a schemaFile), the relationships,
// and the source of every other top-level key, in order, for the
// assertions pane.
func Split(file, schemaFileText string) (Panes, error) {
	file = strings.ReplaceAll(file, "\r\n", "\n")
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader([]byte(file))).Decode(&doc); err != nil {
		return Panes{}, fmt.Errorf("playground: split: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return Panes{}, errors.New("playground: split: the file is not a YAML mapping")
	}
	root := doc.Content[0]
	lines := strings.Split(file, "\n")
	var p Panes
	var rest []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		switch key.Value {
		case "schema":
			p.Schema = strings.TrimSuffix(val.Value, "\n")
		case "schemaFile":
			p.Schema = strings.TrimSuffix(schemaFileText, "\n")
		case "relationships":
			p.Relationships = strings.TrimSuffix(val.Value, "\n")
		default:
			// The key's source, up to the next top-level key.
			end := len(lines)
			if i+2 < len(root.Content) {
				end = root.Content[i+2].Line - 1
				for end > 0 && strings.HasPrefix(lines[end-1], "#") {
					end-- // the next key's comments
				}
			}
			// Comments at the margin just above the key belong to it (a
			// line at the margin cannot be inside an indented block).
			start := key.Line - 1
			for start > 0 && strings.HasPrefix(lines[start-1], "#") {
				start--
			}
			rest = append(rest, strings.TrimRight(strings.Join(lines[start:end], "\n"), "\n"))
		}
	}
	p.Assertions = strings.Join(rest, "\n")
	if p.Assertions != "" {
		p.Assertions += "\n"
	}
	return p, nil
}
