package cli

import (
	"context"
	"flag"
	"strings"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Scoped lookups and counts: the --through/--via and --within flags of
// lookup-resources and lookup-subjects, and pemba count.

// throughFlags are lookup-resources' and count resources' through flags.
type throughFlags struct {
	through, via *string
}

func registerThroughFlags(fs *flag.FlagSet) *throughFlags {
	return &throughFlags{
		through: fs.String("through", "", "only resources that reach this object by stored relationships (region:north, folder:x)"),
		via:     fs.String("via", "", "with --through: the relations followed towards it, comma-separated, each REL or TYPE#REL (default: the relations the schema follows with arrows)"),
	}
}

// scope converts the flags to the API's scope; nil when --through is not
// given.
func (f *throughFlags) scope(usage string) (*pb.ResourceScope, error) {
	if *f.through == "" {
		if *f.via != "" {
			return nil, usagef(usage, "--via needs --through")
		}
		return nil, nil
	}
	obj, err := tuple.ParseObject(*f.through)
	if err != nil {
		return nil, usagef(usage, "--through: %v", err)
	}
	s := &pb.ResourceScope{Object: client.Object(obj)}
	if *f.via != "" {
		for _, r := range strings.Split(*f.via, ",") {
			if r = strings.TrimSpace(r); r == "" {
				return nil, usagef(usage, "--via %q: empty relation", *f.via)
			}
			s.Relations = append(s.Relations, r)
		}
	}
	return s, nil
}

// parseWithin reads --within TYPE:ID#RELATION.
func parseWithin(usage, s string) (*pb.SubjectReference, error) {
	if s == "" {
		return nil, nil
	}
	sub, err := tuple.ParseSubject(s)
	if err != nil {
		return nil, usagef(usage, "--within: %v", err)
	}
	if sub.Relation == "" || sub.IsWildcard() {
		return nil, usagef(usage, "--within %q: want a subject set TYPE:ID#RELATION (department:d#member)", s)
	}
	return client.Subject(sub), nil
}

func countCommand(ctx context.Context, inv *invocation, args []string) error {
	return inv.subcommand(ctx, args, map[string]func(context.Context, *invocation, []string) error{
		"resources":     countResources,
		"relationships": relationshipCount,
	}, "pemba count resources|relationships [flags]")
}

// countResources prints how many resources lookup-resources would list.
func countResources(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba count resources [--through OBJECT [--via RELS]] [--context JSON] [--with REL]... [flags] TYPE#PERMISSION@SUBJECT"
	fs := inv.flagSet()
	qf := inv.queryFlags(fs)
	sf := registerThroughFlags(fs)
	pos, err := inv.parseOutput(fs, usage, args, qf.out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(usage, "want TYPE#PERMISSION@SUBJECT, got %d arguments", len(pos))
	}
	typPerm, subText, ok := strings.Cut(pos[0], "@")
	typ, perm, ok2 := strings.Cut(typPerm, "#")
	if !ok || !ok2 || typ == "" || perm == "" || strings.Contains(typ, ":") {
		return usagef(usage, "%q: want TYPE#PERMISSION@SUBJECT (a type, not an object)", pos[0])
	}
	sub, err := tuple.ParseSubject(subText)
	if err != nil {
		return usagef(usage, "subject: %v", err)
	}
	scope, err := sf.scope(usage)
	if err != nil {
		return err
	}
	q, err := qf.open(inv, usage)
	if err != nil {
		return err
	}
	defer q.c.Close()
	resp, err := q.c.Permissions.CountResources(ctx, &pb.CountResourcesRequest{
		Consistency: q.cons, ResourceObjectType: typ, Permission: perm, Subject: client.Subject(sub),
		Context: q.ctx, OptionalThrough: scope, ContextualRelationships: q.with,
	})
	if err != nil {
		return err
	}
	zk := resp.GetCountedAt().GetToken()
	if inv.json {
		return inv.emitJSON(struct {
			Count       uint64 `json:"count"`
			Conditional uint64 `json:"conditional_count"`
			Zookie      string `json:"zookie"`
		}{resp.GetCount(), resp.GetConditionalCount(), zk})
	}
	inv.printf("%d\n", resp.GetCount())
	if c := resp.GetConditionalCount(); c > 0 {
		inv.infof("%d of them conditional (they need caveat context)\n", c)
	}
	inv.infof("counted%s\n", atSuffix(zk))
	return nil
}

// relationshipCount prints how many relationships match the filter flags.
func relationshipCount(ctx context.Context, inv *invocation, args []string) error {
	// Both "relationship count" and "count relationships" land here.
	usage := "pemba " + inv.name + " [--resource-type T] [--resource-id ID] [--relation R] [--subject TYPE[:ID[#REL]]] [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	rf := consistencyFlags(fs)
	ff := registerFilterFlags(fs)
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q (filters are flags)", pos)
	}
	cons, err := rf.consistency(usage)
	if err != nil {
		return err
	}
	filter, err := ff.filter(usage)
	if err != nil {
		return err
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Permissions.CountRelationships(ctx, &pb.CountRelationshipsRequest{Consistency: cons, RelationshipFilter: filter})
	if err != nil {
		return err
	}
	zk := resp.GetCountedAt().GetToken()
	if inv.json {
		return inv.emitJSON(struct {
			Count  uint64 `json:"count"`
			Zookie string `json:"zookie"`
		}{resp.GetCount(), zk})
	}
	inv.printf("%d\n", resp.GetCount())
	inv.infof("counted%s\n", atSuffix(zk))
	return nil
}
