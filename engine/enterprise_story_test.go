package engine_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// storyStep is one line of a ```story block of examples/enterprise/README.md.
type storyStep struct {
	line int    // in the README, from 1
	text string // trimmed
}

// storyBlocks returns the lines of every ```story block of a README, in
// order; a blank line inside a block is kept (as an empty text), since it
// ends a write.
func storyBlocks(readme string) ([]storyStep, error) {
	var steps []storyStep
	in := false
	for i, line := range strings.Split(readme, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case !in && t == "```story":
			in = true
		case in && t == "```":
			in = false
			steps = append(steps, storyStep{line: i + 1}) // a block's end ends its write
		case in:
			steps = append(steps, storyStep{line: i + 1, text: t})
		}
	}
	if in {
		return nil, errors.New("unterminated ```story block")
	}
	return steps, nil
}

// parseStoryFilter reads a precondition's filter: a relationship (that
// exact one) or TYPE:ID#RELATION (any subject).
func parseStoryFilter(s string) (tuple.Filter, error) {
	if strings.Contains(s, "@") {
		r, err := tuple.Parse(s)
		if err != nil {
			return tuple.Filter{}, err
		}
		rel := r.Subject.Relation
		if rel == "" {
			rel = tuple.Ellipsis
		}
		return tuple.Filter{ResourceType: r.Resource.Type, ResourceID: r.Resource.ID, Relation: r.Relation,
			Subject: &tuple.SubjectFilter{Type: r.Subject.Type, ID: r.Subject.ID, Relation: rel}}, nil
	}
	obj, rel, ok := strings.Cut(s, "#")
	if !ok {
		return tuple.Filter{}, fmt.Errorf("filter %q: want TYPE:ID#RELATION or a relationship", s)
	}
	o, err := tuple.ParseObject(obj)
	if err != nil {
		return tuple.Filter{}, err
	}
	return tuple.Filter{ResourceType: o.Type, ResourceID: o.ID, Relation: rel}, nil
}

// TestEnterpriseStory runs the story of one project and the write rules of
// examples/enterprise/README.md over the example's schema and sample data,
// with an injected clock: every write must commit (or be refused, where
// the README says so) and every check must give the answer shown, at
// least as fresh as the last write's zookie.
func TestEnterpriseStory(t *testing.T) {
	readme, err := os.ReadFile("../examples/enterprise/README.md")
	if err != nil {
		t.Fatal(err)
	}
	schemaText, err := os.ReadFile("../examples/enterprise/schema.zed")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../examples/enterprise/quickstart.relationships")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := storyBlocks(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends() {
		if b.open == nil {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			f := b.enterpriseFixture(t, schemaText)
			var sample []string
			for _, line := range strings.Split(string(data), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "//") {
					sample = append(sample, line)
				}
			}
			zookie := f.touch(sample...)
			runStory(t, f, steps, zookie)
		})
	}
}

func runStory(t *testing.T, f *fixture, steps []storyStep, zookie string) {
	var (
		req                      engine.WriteRequest
		reqLine                  int
		checks, writes, refusals int
	)
	// flush commits the pending write, which must be refused when refused
	// is set.
	flush := func(refused bool, line int) {
		t.Helper()
		if len(req.Updates) == 0 {
			if refused || len(req.Preconditions) > 0 {
				t.Fatalf("README.md:%d: preconditions or → refused without a write", line)
			}
			return
		}
		z, err := f.eng.WriteRelationships(f.ctx, req)
		var pe *engine.PreconditionError
		switch {
		case refused && errors.As(err, &pe):
			refusals++
		case refused:
			t.Errorf("README.md:%d: the write should be refused by a precondition; got %v", reqLine, err)
		case err != nil:
			t.Fatalf("README.md:%d: write: %v", reqLine, err)
		default:
			zookie = z
			writes++
		}
		req = engine.WriteRequest{Caller: "story"}
	}
	req.Caller = "story"
	for _, s := range steps {
		text := s.text
		switch {
		case text == "":
			flush(false, s.line)
		case text == "→ refused":
			flush(true, s.line)
		case strings.HasPrefix(text, "+ "), strings.HasPrefix(text, "- "):
			r, err := tuple.Parse(strings.TrimSpace(text[2:]))
			if err != nil {
				t.Fatalf("README.md:%d: %v", s.line, err)
			}
			op := store.OpTouch
			if text[0] == '-' {
				op = store.OpDelete
			}
			if len(req.Updates) == 0 {
				reqLine = s.line
			}
			req.Updates = append(req.Updates, engine.Update{Op: op, Relationship: r})
		case strings.HasPrefix(text, "? "), strings.HasPrefix(text, "! "):
			if len(req.Updates) > 0 {
				t.Fatalf("README.md:%d: preconditions go before the write's relationships", s.line)
			}
			fl, err := parseStoryFilter(strings.TrimSpace(text[2:]))
			if err != nil {
				t.Fatalf("README.md:%d: %v", s.line, err)
			}
			req.Preconditions = append(req.Preconditions, engine.Precondition{Filter: fl, MustExist: text[0] == '?'})
		case strings.HasPrefix(text, "at "):
			flush(false, s.line)
			at, err := time.Parse(time.RFC3339, strings.TrimSpace(text[3:]))
			if err != nil {
				t.Fatalf("README.md:%d: %v", s.line, err)
			}
			f.clk.Advance(at.Sub(f.clk.Now()))
		default:
			flush(false, s.line)
			q, want, ok := strings.Cut(text, " → ")
			if !ok {
				t.Fatalf("README.md:%d: not a story line: %q", s.line, text)
			}
			q, ctxText, _ := strings.Cut(q, " with ")
			r, err := tuple.Parse(q)
			if err != nil {
				t.Fatalf("README.md:%d: %v", s.line, err)
			}
			cr := engine.CheckRequest{Consistency: engine.AtLeastAsFresh(zookie), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}}
			if ctxText != "" {
				if cr.Context, err = tuple.ParseContext(ctxText); err != nil {
					t.Fatalf("README.md:%d: %v", s.line, err)
				}
			}
			resp, err := f.eng.Check(f.ctx, cr)
			if err != nil {
				t.Fatalf("README.md:%d: check %s: %v", s.line, text, err)
			}
			got := map[eval.Permissionship]string{eval.HasPermission: "true", eval.NoPermission: "false", eval.ConditionalPermission: "conditional"}[resp.Permissionship]
			if got != want {
				t.Errorf("README.md:%d: %s: got %s", s.line, text, got)
			}
			checks++
		}
	}
	flush(false, 0)
	// The story is the README's; make sure it was all there to run.
	if checks < 40 || writes < 10 || refusals < 2 {
		t.Errorf("the story ran %d checks, %d writes and %d refused writes; want at least 40, 10 and 2", checks, writes, refusals)
	}
}
