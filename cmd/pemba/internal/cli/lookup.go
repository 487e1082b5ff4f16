package cli

import (
	"context"
	"errors"
	"strings"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

func lookupResourcesCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba lookup-resources [--limit N] [--through OBJECT [--via RELS]] [--context JSON] [flags] TYPE#PERMISSION@SUBJECT"
	fs := inv.flagSet()
	qf := inv.queryFlags(fs)
	limit := fs.Int("limit", 0, "print at most N resources, and say so when more match (0: all)")
	sf := registerThroughFlags(fs)
	pos, err := inv.parseOutput(fs, usage, args, qf.out)
	if err != nil {
		return err
	}
	var typPerm, subText string
	switch len(pos) {
	case 1:
		var ok bool
		if typPerm, subText, ok = strings.Cut(pos[0], "@"); !ok {
			return usagef(usage, "%q: want TYPE#PERMISSION@SUBJECT", pos[0])
		}
	case 3:
		typPerm, subText = pos[0]+"#"+pos[1], pos[2]
	default:
		return usagef(usage, "want TYPE#PERMISSION@SUBJECT, got %d arguments", len(pos))
	}
	typ, perm, ok := strings.Cut(typPerm, "#")
	if !ok || typ == "" || perm == "" || strings.Contains(typ, ":") {
		return usagef(usage, "%q: want TYPE#PERMISSION (a type, not an object)", typPerm)
	}
	sub, err := tuple.ParseSubject(subText)
	if err != nil {
		return usagef(usage, "subject: %v", err)
	}
	if *limit < 0 {
		return usagef(usage, "negative --limit")
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
	cons, st, c := q.cons, q.ctx, q.c
	// Without --limit one request streams every result. With it, pages of
	// at most maxLookupPage (the server's largest optional_limit) follow
	// each other's cursors, all at the first page's revision.
	page := 0
	if *limit > 0 {
		page = maxLookupPage
	}
	lim := &limiter{limit: *limit}
	var (
		cursor *pb.Cursor
		zk     string
	)
	for {
		size := lim.size(page)
		got, err := func() (int, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := c.Permissions.LookupResources(ctx, &pb.LookupResourcesRequest{
				Consistency: cons, ResourceObjectType: typ, Permission: perm, Subject: client.Subject(sub),
				Context: st, OptionalLimit: uint32(size), OptionalCursor: cursor, OptionalThrough: scope,
				ContextualRelationships: q.with,
			})
			if err != nil {
				return 0, err
			}
			got := 0
			err = recvEach(stream, func(msg *pb.LookupResourcesResponse) error {
				got++
				if !lim.take() {
					return errLimitReached
				}
				cursor, zk = msg.GetAfterResultCursor(), msg.GetLookedUpAt().GetToken()
				p := msg.GetPermissionship()
				obj := typ + ":" + msg.GetResourceObjectId()
				if inv.json {
					missing := msg.GetPartialCaveatInfo().GetMissingRequiredContext()
					if missing == nil {
						missing = []string{}
					}
					return inv.emitJSON(struct {
						Resource       string   `json:"resource"`
						ResourceID     string   `json:"resource_id"`
						Permissionship string   `json:"permissionship"`
						Missing        []string `json:"missing_context"`
						Zookie         string   `json:"zookie"`
					}{obj, msg.GetResourceObjectId(), permissionshipName(p), missing, zk})
				}
				inv.printf("%s%s\n", obj, missingSuffix(p, msg.GetPartialCaveatInfo()))
				return nil
			})
			if errors.Is(err, errLimitReached) {
				err = nil
			}
			return got, err
		}()
		if err != nil {
			return err
		}
		if lim.done(size, got) {
			break
		}
	}
	inv.infof("%s%s\n", counted(lim.n, "resource"), atSuffix(zk))
	inv.warnf("%s", lim.notice("resources"))
	return nil
}

// atSuffix names the revision of a result list, when there was one.
func atSuffix(zk string) string {
	if zk == "" {
		return ""
	}
	return " at " + zk
}

func lookupSubjectsCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba lookup-subjects [--within TYPE:ID#RELATION] [--context JSON] [flags] RESOURCE#PERMISSION SUBJECT_TYPE[#RELATION]"
	fs := inv.flagSet()
	qf := inv.queryFlags(fs)
	withinFlag := fs.String("within", "", "only subjects that are also members of this subject set (department:d#member)")
	pos, err := inv.parseOutput(fs, usage, args, qf.out)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef(usage, "want RESOURCE#PERMISSION and SUBJECT_TYPE, got %d arguments", len(pos))
	}
	res, perm, err := splitPermission(pos[0])
	if err != nil {
		return usagef(usage, "%v", err)
	}
	subType, subRel, _ := strings.Cut(pos[1], "#")
	if subType == "" || strings.Contains(subType, ":") {
		return usagef(usage, "%q: want SUBJECT_TYPE or SUBJECT_TYPE#RELATION", pos[1])
	}
	within, err := parseWithin(usage, *withinFlag)
	if err != nil {
		return err
	}
	q, err := qf.open(inv, usage)
	if err != nil {
		return err
	}
	defer q.c.Close()
	cons, st, c := q.cons, q.ctx, q.c
	stream, err := c.Permissions.LookupSubjects(ctx, &pb.LookupSubjectsRequest{
		Consistency: cons, Resource: client.Object(res), Permission: perm,
		SubjectObjectType: subType, OptionalSubjectRelation: subRel, Context: st, OptionalWithin: within,
		ContextualRelationships: q.with,
	})
	if err != nil {
		return err
	}
	name := func(id string) string {
		s := subType + ":" + id
		if subRel != "" {
			s += "#" + subRel
		}
		return s
	}
	var zk string
	n := 0
	err = recvEach(stream, func(msg *pb.LookupSubjectsResponse) error {
		n++
		zk = msg.GetLookedUpAt().GetToken()
		s := msg.GetSubject()
		var excluded []string
		for _, x := range msg.GetExcludedSubjects() {
			excluded = append(excluded, name(x.GetSubjectObjectId()))
		}
		if inv.json {
			missing := s.GetPartialCaveatInfo().GetMissingRequiredContext()
			if missing == nil {
				missing = []string{}
			}
			if excluded == nil {
				excluded = []string{}
			}
			return inv.emitJSON(struct {
				Subject        string   `json:"subject"`
				SubjectID      string   `json:"subject_id"`
				Permissionship string   `json:"permissionship"`
				Missing        []string `json:"missing_context"`
				Excluded       []string `json:"excluded_subjects"`
				Zookie         string   `json:"zookie"`
			}{name(s.GetSubjectObjectId()), s.GetSubjectObjectId(), permissionshipName(s.GetPermissionship()), missing, excluded, zk})
		}
		line := name(s.GetSubjectObjectId()) + missingSuffix(s.GetPermissionship(), s.GetPartialCaveatInfo())
		if len(excluded) > 0 {
			line += " (except " + strings.Join(excluded, ", ") + ")"
		}
		inv.printf("%s\n", line)
		return nil
	})
	if err != nil {
		return err
	}
	inv.infof("%s%s\n", counted(n, "subject"), atSuffix(zk))
	return nil
}
