package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// maxLookupPage is the largest optional_limit of LookupResources the
// server accepts by default (engine.DefaultMaxLookupLimit).
const maxLookupPage = 10000

// contextFlag registers --context.
func contextFlag(fs *flag.FlagSet) *string {
	return fs.String("context", "", "caveat context: a JSON object, such as '{\"size\": 1024}'")
}

// parseContext converts --context; empty means none.
func parseContext(usage, s string) (*structpb.Struct, error) {
	if s == "" {
		return nil, nil
	}
	m, err := tuple.ParseContext(s)
	if err != nil {
		return nil, usagef(usage, "--context: %v", err)
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil, usagef(usage, "--context: %v", err)
	}
	return st, nil
}

// queryFlags are the flags every query command shares: connection,
// consistency, caveat context, contextual relationships and output format.
type queryFlags struct {
	conn *connFlags
	read *readFlags
	cctx *string
	with *relationshipList
	out  *string
}

// queryFlags registers the shared query flags on fs.
func (inv *invocation) queryFlags(fs *flag.FlagSet) *queryFlags {
	with := &relationshipList{}
	fs.Var(with, "with", "a contextual relationship that holds for this request only, never written (repeatable): RESOURCE#RELATION@SUBJECT, with [CAVEAT:{...}] or [expiration:RFC3339] as in a write")
	return &queryFlags{conn: inv.connFlags(fs), read: consistencyFlags(fs), cctx: contextFlag(fs), with: with, out: outputFlag(fs)}
}

// relationshipList is a repeatable flag of relationships.
type relationshipList struct {
	rels []*pb.Relationship
}

func (l *relationshipList) String() string { return "" }

func (l *relationshipList) Set(s string) error {
	r, err := tuple.Parse(s)
	if err != nil {
		return err
	}
	pr, err := client.Relationship(r)
	if err != nil {
		return err
	}
	l.rels = append(l.rels, pr)
	return nil
}

// query is what a query command needs once its arguments are valid: the
// consistency, caveat context and contextual relationships of the
// request, and a connected client (the caller closes it).
type query struct {
	cons *pb.Consistency
	ctx  *structpb.Struct
	with []*pb.Relationship
	c    *client.Client
}

// open validates the shared flags and dials the server.
func (q *queryFlags) open(inv *invocation, usage string) (*query, error) {
	cons, err := q.read.consistency(usage)
	if err != nil {
		return nil, err
	}
	st, err := parseContext(usage, *q.cctx)
	if err != nil {
		return nil, err
	}
	c, err := inv.dial(q.conn, usage)
	if err != nil {
		return nil, err
	}
	return &query{cons: cons, ctx: st, with: q.with.rels, c: c}, nil
}

// splitPermission reads RESOURCE#PERMISSION (doc:1#view).
func splitPermission(s string) (tuple.ObjectRef, string, error) {
	i := strings.LastIndexByte(s, '#')
	if i < 0 {
		return tuple.ObjectRef{}, "", fmt.Errorf("%q: want TYPE:ID#PERMISSION", s)
	}
	obj, err := tuple.ParseObject(s[:i])
	if err != nil {
		return tuple.ObjectRef{}, "", err
	}
	if s[i+1:] == "" {
		return tuple.ObjectRef{}, "", fmt.Errorf("%q: empty permission", s)
	}
	return obj, s[i+1:], nil
}

// checkArgs reads RESOURCE#PERMISSION@SUBJECT, or the three parts as
// separate arguments (zed's order: RESOURCE PERMISSION SUBJECT).
func checkArgs(usage string, pos []string) (tuple.ObjectRef, string, tuple.SubjectRef, error) {
	var resPerm, sub string
	switch len(pos) {
	case 1:
		var ok bool
		resPerm, sub, ok = strings.Cut(pos[0], "@")
		if !ok {
			return tuple.ObjectRef{}, "", tuple.SubjectRef{}, usagef(usage, "%q: want RESOURCE#PERMISSION@SUBJECT", pos[0])
		}
	case 3:
		resPerm, sub = pos[0]+"#"+pos[1], pos[2]
	default:
		return tuple.ObjectRef{}, "", tuple.SubjectRef{}, usagef(usage, "want RESOURCE#PERMISSION@SUBJECT, got %d arguments", len(pos))
	}
	res, perm, err := splitPermission(resPerm)
	if err != nil {
		return tuple.ObjectRef{}, "", tuple.SubjectRef{}, usagef(usage, "%v", err)
	}
	s, err := tuple.ParseSubject(sub)
	if err != nil {
		return tuple.ObjectRef{}, "", tuple.SubjectRef{}, usagef(usage, "subject: %v", err)
	}
	return res, perm, s, nil
}

// permissionshipWord names an answer in text output.
func permissionshipWord(p pb.Permissionship) string {
	switch p {
	case pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		return "true"
	case pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
		return "false"
	case pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return "conditional"
	}
	return "unknown"
}

// permissionshipName names an answer in JSON output.
func permissionshipName(p pb.Permissionship) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PERMISSIONSHIP_"))
}

// missingSuffix describes the context a conditional answer needs.
func missingSuffix(p pb.Permissionship, info *pb.PartialCaveatInfo) string {
	if p != pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION {
		return ""
	}
	if m := info.GetMissingRequiredContext(); len(m) > 0 {
		return " (missing context: " + strings.Join(m, ", ") + ")"
	}
	return " (conditional)"
}

func checkCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba check [--context JSON] [--with REL]... [--exit-code] [--explain] [flags] RESOURCE#PERMISSION@SUBJECT\n" +
		"       pemba check [--relations] [--resource RESOURCE]... [--explain] [flags] RESOURCE#*@SUBJECT (every permission)\n" +
		"       pemba check [--resource RESOURCE]... [--explain] [flags] RESOURCE#PERM1,PERM2@SUBJECT (a permission set)"
	fs := inv.flagSet()
	qf := inv.queryFlags(fs)
	exitCode := fs.Bool("exit-code", false, "exit 3 when denied and 4 when conditional, instead of 0 (one permission only)")
	explain := fs.Bool("explain", false, "explain the answer: the path that grants, or each branch tried and why it failed (of a permission set: every answer)")
	sf := permissionSetFlags(fs)
	pos, err := inv.parseOutput(fs, usage, args, qf.out)
	if err != nil {
		return err
	}
	res, perm, sub, err := checkArgs(usage, pos)
	if err != nil {
		return err
	}
	if sf.isSet(perm) {
		if *exitCode {
			return usagef(usage, "--exit-code takes one permission, not a permission set")
		}
		return checkSet(ctx, inv, usage, qf, sf, res, perm, sub, *explain)
	}
	q, err := qf.open(inv, usage)
	if err != nil {
		return err
	}
	defer q.c.Close()
	cons, st, c := q.cons, q.ctx, q.c
	resp, err := c.Permissions.CheckPermission(ctx, &pb.CheckPermissionRequest{
		Consistency: cons, Resource: client.Object(res), Permission: perm, Subject: client.Subject(sub), Context: st,
		ContextualRelationships: q.with, Explain: *explain,
	})
	if err != nil {
		if x := explanationOf(err); x != nil && !inv.json {
			// The depth limit: the explanation shows the paths.
			inv.printf("%s", renderExplanation(x))
		}
		return err
	}
	p := resp.GetPermissionship()
	if inv.json {
		missing := resp.GetPartialCaveatInfo().GetMissingRequiredContext()
		if missing == nil {
			missing = []string{}
		}
		var x json.RawMessage
		if *explain {
			m := protojson.MarshalOptions{UseProtoNames: true}
			if x, err = m.Marshal(resp.GetExplanation()); err != nil {
				return fmt.Errorf("encode explanation: %w", err)
			}
		}
		if err := inv.emitJSON(struct {
			Permissionship string          `json:"permissionship"`
			Allowed        bool            `json:"allowed"`
			Missing        []string        `json:"missing_context"`
			Zookie         string          `json:"zookie"`
			Explanation    json.RawMessage `json:"explanation,omitempty"`
		}{permissionshipName(p), p == pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION, missing, resp.GetCheckedAt().GetToken(), x}); err != nil {
			return err
		}
	} else {
		inv.printf("%s%s\n", permissionshipWord(p), missingSuffix(p, resp.GetPartialCaveatInfo()))
		if *explain {
			inv.printf("%s", renderExplanation(resp.GetExplanation()))
		}
		inv.infof("checked at %s\n", resp.GetCheckedAt().GetToken())
	}
	if *exitCode {
		switch p {
		case pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		case pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
			return &exitError{ExitConditional}
		default:
			return &exitError{ExitDenied}
		}
	}
	return nil
}

func expandCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba expand [--depth N] [--subject SUBJECT] [--context JSON] [flags] RESOURCE#PERMISSION"
	fs := inv.flagSet()
	qf := inv.queryFlags(fs)
	depth := fs.Uint("depth", 0, "expand at most N relations deep (0: fully, stopping at cycles)")
	markFlag := fs.String("subject", "", "mark the leaves that list this subject (TYPE:ID or TYPE:ID#REL), to follow its paths")
	pos, err := inv.parseOutput(fs, usage, args, qf.out)
	if err != nil {
		return err
	}
	var resPerm string
	switch len(pos) {
	case 1:
		resPerm = pos[0]
	case 2:
		resPerm = pos[0] + "#" + pos[1]
	default:
		return usagef(usage, "want RESOURCE#PERMISSION, got %d arguments", len(pos))
	}
	res, perm, err := splitPermission(resPerm)
	if err != nil {
		return usagef(usage, "%v", err)
	}
	var mark *tuple.SubjectRef
	if *markFlag != "" {
		m, err := tuple.ParseSubject(*markFlag)
		if err != nil {
			return usagef(usage, "--subject: %v", err)
		}
		mark = &m
	}
	if *depth > 1<<16 {
		return usagef(usage, "--depth %d is too large", *depth)
	}
	q, err := qf.open(inv, usage)
	if err != nil {
		return err
	}
	defer q.c.Close()
	cons, st, c := q.cons, q.ctx, q.c
	resp, err := c.Permissions.ExpandPermissionTree(ctx, &pb.ExpandPermissionTreeRequest{
		Consistency: cons, Resource: client.Object(res), Permission: perm, OptionalDepth: uint32(*depth), Context: st,
		ContextualRelationships: q.with,
	})
	if err != nil {
		return err
	}
	if inv.json {
		tree, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp.GetTreeRoot())
		if err != nil {
			return fmt.Errorf("encode tree: %w", err)
		}
		return inv.emitJSON(struct {
			Zookie string          `json:"zookie"`
			Tree   json.RawMessage `json:"tree"`
		}{resp.GetExpandedAt().GetToken(), tree})
	}
	inv.printf("%s", renderTree(resp.GetTreeRoot(), mark))
	inv.infof("expanded at %s\n", resp.GetExpandedAt().GetToken())
	return nil
}
