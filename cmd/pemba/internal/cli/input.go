package cli

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// origins remembers where each relationship of an input came from, by its
// position in the order sent (0, 1, ...): a command-line argument or a
// line of a file, so that every error about one names "FILE:LINE". Lines
// are kept as runs of consecutive lines, so a file of a million tuples
// costs a few entries.
type origins struct {
	name string // the file
	args int    // positions 0..args-1 are arguments
	runs []struct{ pos, line int }
	n    int // positions so far
}

// addArg records the next position as the next argument; arguments come
// before lines.
func (o *origins) addArg() { o.args++; o.n++ }

// addLine records the next position as line of the file.
func (o *origins) addLine(line int) {
	if k := len(o.runs); k == 0 || o.runs[k-1].line+(o.n-o.runs[k-1].pos) != line {
		o.runs = append(o.runs, struct{ pos, line int }{o.n, line})
	}
	o.n++
}

// of names the origin of position pos: "argument 2" or "FILE:LINE".
func (o *origins) of(pos int) (string, bool) {
	switch {
	case pos < 0 || pos >= o.n:
		return "", false
	case pos < o.args:
		return "argument " + strconv.Itoa(pos+1), true
	}
	k := sort.Search(len(o.runs), func(k int) bool { return o.runs[k].pos > pos }) - 1
	return fmt.Sprintf("%s:%d", o.name, o.runs[k].line+pos-o.runs[k].pos), true
}

// must names the origin of a position the caller recorded.
func (o *origins) must(pos int) string {
	s, _ := o.of(pos)
	return s
}

// Where the server's messages say which relationship of a request failed:
// a field path of WriteRelationships ("updates[12].relationship...") or
// of ImportRelationships ("messages[1].relationships[499]..."), or the
// engine's "update 12: " or "update 12 (CREATE doc:1#viewer@user:a): "
// (for an import, the position in the stream).
var (
	reImportPath = regexp.MustCompile(`messages\[(\d+)\]\.relationships\[(\d+)\]\.?`)
	reWritePath  = regexp.MustCompile(`updates\[(\d+)\]\.?`)
	reUpdate     = regexp.MustCompile(`\bupdate (\d+)(?: \([^)]*\))?: `)
	reExists     = regexp.MustCompile(`relationship (\S+) already exists`)
)

// locator turns the server's errors about one relationship of a request
// into errors that name its origin.
type locator struct {
	from *origins
	// base is the position of the request's first relationship.
	base int
	// msgStarts holds, for an import stream, the position of the first
	// relationship of each message sent.
	msgStarts []int
	// keys finds a relationship named by its key (ALREADY_EXISTS).
	keys map[string]int
	// outcome, when set, says what was committed; an error about one
	// relationship is a refusal, so the request committed nothing.
	outcome string
}

// locate prefixes err's message with the origin of the relationship it is
// about, dropping the request-relative index, and keeps its code and
// details. Errors it cannot place are returned unchanged.
func (l *locator) locate(err error) error {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	msg, pos, frag := st.Message(), -1, ""
	if m := reImportPath.FindStringSubmatch(msg); m != nil && l.msgStarts != nil {
		mi, _ := strconv.Atoi(m[1])
		ri, _ := strconv.Atoi(m[2])
		if mi < len(l.msgStarts) {
			pos, frag = l.msgStarts[mi]+ri, m[0]
		}
	} else if m := reWritePath.FindStringSubmatch(msg); m != nil {
		i, _ := strconv.Atoi(m[1])
		pos, frag = l.base+i, m[0]
	} else if m := reUpdate.FindStringSubmatch(msg); m != nil {
		i, _ := strconv.Atoi(m[1])
		pos, frag = l.base+i, m[0]
	} else if m := reExists.FindStringSubmatch(msg); m != nil && st.Code() == codes.AlreadyExists {
		if p, ok := l.keys[m[1]]; ok {
			pos = p
		}
	}
	where, ok := l.from.of(pos)
	if !ok {
		return err
	}
	p := st.Proto()
	p.Message = where + ": " + strings.Replace(msg, frag, "", 1)
	if l.outcome != "" {
		p.Message += " (" + l.outcome + ")"
	}
	return status.ErrorProto(p)
}

// schemaCheck validates relationships against the server's schema before
// anything is sent, so that a bad line is refused with its FILE:LINE while
// nothing is written yet. Without a schema it can read and compile (an old
// server, no permission to read it) it checks nothing, and the server's
// own validation, mapped back by a locator, has the last word either way.
type schemaCheck struct{ s *schema.Schema }

func newSchemaCheck(ctx context.Context, c *client.Client) *schemaCheck {
	resp, err := c.Schema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: &pb.Consistency{
		Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true},
	}})
	if err != nil {
		return &schemaCheck{}
	}
	s, err := schema.Compile("server schema", resp.GetSchemaText())
	if err != nil {
		return &schemaCheck{}
	}
	return &schemaCheck{s: s}
}

// check validates r (a touch or create; deletes need no schema match).
func (sc *schemaCheck) check(r tuple.Relationship) error {
	if sc.s == nil {
		return nil
	}
	if err := engine.ValidateRelationship(sc.s, r); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "engine: "))
	}
	return nil
}

// badInput reports a relationship of the input that the server's schema
// refuses, as the server would (INVALID_ARGUMENT), with its origin and what
// was committed.
func badInput(where string, err error, outcome string) error {
	return status.Errorf(codes.InvalidArgument, "%s: %v (%s)", where, err, outcome)
}
