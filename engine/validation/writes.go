package validation

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// This file holds the writes section, a Pemba extension of the format
// (zed does not know it): writes run in file order after the assertions
// and validation, each one atomic, each expected to commit or to be
// refused by a named invariant of the schema. It is how a validation file
// proves its schema's invariants:
//
//	writes:
//	  - updates:
//	      - delete enterprise:acme#creator@employee:chen
//	      - touch enterprise:acme#creator@employee:liu
//	  - updates:
//	      - touch enterprise:acme#creator@employee:sun
//	    refusedBy: enterprise.one_creator

// Write is one entry of the writes section.
type Write struct {
	Pos     Pos
	Updates []engine.Update
	// RefusedBy is the invariant ("definition.name") that must refuse the
	// write; "" when the write must commit.
	RefusedBy string
}

func (p *parser) writes(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "writes: expected a list of writes, each with updates and, optionally, refusedBy")
		return
	}
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, "writes: expected a mapping with keys updates and refusedBy")
			continue
		}
		w := Write{Pos: p.pos(item)}
		for i := 0; i+1 < len(item.Content); i += 2 {
			key, val := item.Content[i], item.Content[i+1]
			switch key.Value {
			case "updates":
				if val.Kind != yaml.SequenceNode || len(val.Content) == 0 {
					p.errorf(val.Line, "writes: updates: expected a list like [touch document:1#viewer@user:anne]")
					continue
				}
				for _, u := range val.Content {
					up, err := parseUpdate(u.Value)
					if u.Kind != yaml.ScalarNode || err != nil {
						p.errorf(u.Line, "writes: update %q: %v", u.Value, err)
						continue
					}
					w.Updates = append(w.Updates, up)
				}
			case "refusedBy":
				s, ok := p.scalar(val, "refusedBy")
				if ok && strings.Count(s, ".") != 1 {
					p.errorf(val.Line, "writes: refusedBy %q: expected definition.invariant", s)
					continue
				}
				w.RefusedBy = s
			default:
				p.errorf(key.Line, "writes: unknown key %q (want updates or refusedBy)", key.Value)
			}
		}
		if len(w.Updates) == 0 {
			p.errorf(item.Line, "writes: a write needs updates")
			continue
		}
		p.f.Writes = append(p.f.Writes, w)
	}
}

// parseUpdate parses "touch REL", "create REL" or "delete REL".
func parseUpdate(s string) (engine.Update, error) {
	verb, rest, ok := strings.Cut(strings.TrimSpace(s), " ")
	var op engine.Op
	switch verb {
	case "touch":
		op = engine.OpTouch
	case "create":
		op = engine.OpCreate
	case "delete":
		op = engine.OpDelete
	default:
		ok = false
	}
	if !ok {
		return engine.Update{}, errors.New("expected touch, create or delete, then a relationship")
	}
	r, err := tuple.Parse(strings.TrimSpace(rest))
	if err != nil {
		return engine.Update{}, err
	}
	return engine.Update{Op: op, Relationship: r}, nil
}

// write runs one entry of the writes section.
func (r *runner) write(ctx context.Context, w Write) {
	r.res.Writes++
	_, err := r.eng.WriteRelationships(ctx, engine.WriteRequest{Caller: "validation", Updates: w.Updates})
	var ie *engine.InvariantError
	switch {
	case w.RefusedBy == "" && err != nil:
		r.fail(w.Pos, "", "write refused, want it committed: %v", err)
	case w.RefusedBy == "":
	case err == nil:
		r.fail(w.Pos, "", "write committed, want it refused by invariant %s", w.RefusedBy)
	case !errors.As(err, &ie):
		r.fail(w.Pos, "", "write failed with %v, want it refused by invariant %s", err, w.RefusedBy)
	case ie.Invariant != w.RefusedBy:
		r.fail(w.Pos, "", "write refused by invariant %s, want %s: %v", ie.Invariant, w.RefusedBy, err)
	}
}

// String renders the write's updates, for messages.
func (w Write) String() string {
	parts := make([]string, len(w.Updates))
	for i, u := range w.Updates {
		parts[i] = fmt.Sprintf("%s %s", strings.ToLower(u.Op.String()), u.Relationship)
	}
	return strings.Join(parts, ", ")
}
