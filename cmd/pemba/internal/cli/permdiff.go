package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// scopeFlags are the subject flags of diff and watch-permissions.
type scopeFlags struct {
	subject, subjectType *string
}

func newScopeFlags(fs *flag.FlagSet) *scopeFlags {
	return &scopeFlags{
		subject:     fs.String("subject", "", "only this `subject` (user:tom, group:eng#member)"),
		subjectType: fs.String("subject-type", "", "only subjects of this `type` (user, group#member; default: every plain subject type)"),
	}
}

// scope reads RESOURCE_TYPE[:ID]#PERMISSION and the subject flags.
func (sf *scopeFlags) scope(usage, arg string) (*pb.PermissionScope, error) {
	i := strings.LastIndexByte(arg, '#')
	if i <= 0 || i == len(arg)-1 {
		return nil, usagef(usage, "%q: want RESOURCE_TYPE#PERMISSION or RESOURCE_TYPE:ID#PERMISSION", arg)
	}
	typ, id, _ := strings.Cut(arg[:i], ":")
	sc := &pb.PermissionScope{ResourceObjectType: typ, OptionalResourceId: id, Permission: arg[i+1:]}
	switch {
	case *sf.subject != "" && *sf.subjectType != "":
		return nil, usagef(usage, "give --subject or --subject-type, not both")
	case *sf.subject != "":
		s, err := tuple.ParseSubject(*sf.subject)
		if err != nil {
			return nil, usagef(usage, "--subject: %v", err)
		}
		sc.OptionalSubjectObjectType, sc.OptionalSubjectId, sc.OptionalSubjectRelation = s.Type, s.ID, s.Relation
	case *sf.subjectType != "":
		t, rel, _ := strings.Cut(*sf.subjectType, "#")
		if t == "" || strings.Contains(t, ":") {
			return nil, usagef(usage, "--subject-type %q: want TYPE or TYPE#RELATION", *sf.subjectType)
		}
		sc.OptionalSubjectObjectType, sc.OptionalSubjectRelation = t, rel
	}
	return sc, nil
}

// changeLine renders a change: "+" a grant, "-" a revocation, "~" a
// change between conditional and unconditional.
func changeLine(c *pb.PermissionChange) string {
	sign := "~"
	switch {
	case c.GetBefore() == pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
		sign = "+"
	case c.GetAfter() == pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
		sign = "-"
	}
	s := fmt.Sprintf("%s %s#%s@%s", sign, objectName(c.GetResource()), c.GetPermission(), subjectName(c.GetSubject()))
	if sign == "~" || c.GetBefore() == pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION || c.GetAfter() == pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION {
		s += fmt.Sprintf(" (%s -> %s)", permissionshipName(c.GetBefore()), permissionshipName(c.GetAfter()))
	}
	if x := c.GetExcludedSubjectIds(); len(x) > 0 {
		s += " (except " + strings.Join(x, ", ") + ")"
	}
	return s
}

func objectName(o *pb.ObjectReference) string { return o.GetObjectType() + ":" + o.GetObjectId() }

// jsonChange is a change in JSON output.
type jsonChange struct {
	Resource   string   `json:"resource"`
	Permission string   `json:"permission"`
	Subject    string   `json:"subject"`
	Excluded   []string `json:"excluded_subject_ids,omitempty"`
	Before     string   `json:"before"`
	After      string   `json:"after"`
}

func toJSONChange(c *pb.PermissionChange) jsonChange {
	return jsonChange{objectName(c.GetResource()), c.GetPermission(), subjectName(c.GetSubject()), c.GetExcludedSubjectIds(),
		permissionshipName(c.GetBefore()), permissionshipName(c.GetAfter())}
}

// diffCommand prints which results of a permission changed between two
// zookies.
func diffCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba diff --from ZOOKIE --to ZOOKIE [--subject S | --subject-type T] [--context JSON] [flags] RESOURCE_TYPE[:ID]#PERMISSION"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	from := fs.String("from", "", "the earlier `zookie` (required)")
	to := fs.String("to", "", "the later `zookie` (required)")
	sf := newScopeFlags(fs)
	cctx := contextFlag(fs)
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(usage, "want RESOURCE_TYPE#PERMISSION, got %d arguments", len(pos))
	}
	if *from == "" || *to == "" {
		return usagef(usage, "--from and --to are required")
	}
	sc, err := sf.scope(usage, pos[0])
	if err != nil {
		return err
	}
	st, err := parseContext(usage, *cctx)
	if err != nil {
		return err
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	stream, err := c.Permissions.DiffPermissions(ctx, &pb.DiffPermissionsRequest{From: &pb.Zookie{Token: *from}, To: &pb.Zookie{Token: *to}, Scope: sc, Context: st})
	if err != nil {
		return err
	}
	granted, revoked, n := 0, 0, 0
	var summary *pb.DiffPermissionsResponse
	err = recvEach(stream, func(msg *pb.DiffPermissionsResponse) error {
		ch := msg.GetChange()
		if ch == nil {
			summary = msg
			return nil
		}
		n++
		switch {
		case ch.GetBefore() == pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
			granted++
		case ch.GetAfter() == pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION:
			revoked++
		}
		if inv.json {
			return inv.emitJSON(toJSONChange(ch))
		}
		inv.printf("%s\n", changeLine(ch))
		return nil
	})
	if err != nil {
		return err
	}
	inv.infof("%d changes (%d granted, %d revoked) from %d relationship changes, %d candidate resources\n",
		n, granted, revoked, summary.GetRelationshipsChanged(), summary.GetCandidates())
	return nil
}

// watchPermissionsCommand streams a permission's changes until the
// context ends (Ctrl-C). A broken connection (Unavailable) is resumed
// from the last checkpoint printed, with backoff.
func watchPermissionsCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba watch-permissions [--from ZOOKIE [--from-time T]] [--subject S | --subject-type T] [--context JSON] [flags] RESOURCE_TYPE[:ID]#PERMISSION"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	from := fs.String("from", "", "resume after this checkpoint's `zookie` (default: the head)")
	fromTime := fs.String("from-time", "", "the checkpoint's `time` (RFC 3339), so that expirations since are reported")
	sf := newScopeFlags(fs)
	cctx := contextFlag(fs)
	noResume := fs.Bool("no-resume", false, "exit 1 when the connection breaks instead of resuming after the last checkpoint")
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(usage, "want RESOURCE_TYPE#PERMISSION, got %d arguments", len(pos))
	}
	sc, err := sf.scope(usage, pos[0])
	if err != nil {
		return err
	}
	st, err := parseContext(usage, *cctx)
	if err != nil {
		return err
	}
	req := &pb.WatchPermissionsRequest{Scope: sc, Context: st}
	if *from != "" {
		req.OptionalStartCursor = &pb.Zookie{Token: *from}
	}
	if *fromTime != "" {
		if *from == "" {
			return usagef(usage, "--from-time needs --from")
		}
		t, err := time.Parse(time.RFC3339Nano, *fromTime)
		if err != nil {
			return usagef(usage, "--from-time: %v", err)
		}
		req.OptionalStartTime = timestamppb.New(t)
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	delay := minResumeDelay
	connected := false
	// The server checkpoints every time it reads the clock; a line is
	// printed only for a checkpoint that ends a step with changes or
	// moves to a new zookie, not once a second for nothing.
	lastZookie, pending := "", true
	for {
		err := func() error {
			stream, err := c.Watch.WatchPermissions(ctx, req)
			if err != nil {
				return err
			}
			for {
				msg, err := stream.Recv()
				if err != nil {
					return err
				}
				connected = true
				if !msg.GetCheckpoint() || pending || msg.GetChangesThrough().GetToken() != lastZookie {
					if err := inv.emitPermissionEvent(msg); err != nil {
						return err
					}
				}
				pending = !msg.GetCheckpoint()
				if msg.GetCheckpoint() {
					lastZookie = msg.GetChangesThrough().GetToken()
					// Resume after the state the consumer has seen whole.
					req.OptionalStartCursor, req.OptionalStartTime = msg.GetChangesThrough(), msg.GetEvaluatedAt()
					delay = minResumeDelay
				}
			}
		}()
		if err = watchEnd(ctx, err); err == nil || *noResume || !connected || status.Code(err) != codes.Unavailable {
			return err
		}
		fmt.Fprintf(inv.env.Stderr, "%s: %s; resuming in %v\n", inv.name, describe(err), delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, maxResumeDelay)
	}
}

// emitPermissionEvent prints a change ("+ doc:1#view@user:tom" with its
// zookie and cause) or a checkpoint ("// checkpoint ZOOKIE at TIME").
func (inv *invocation) emitPermissionEvent(msg *pb.WatchPermissionsResponse) error {
	at := msg.GetEvaluatedAt().AsTime().UTC().Format(time.RFC3339Nano)
	zk := msg.GetChangesThrough().GetToken()
	cause := strings.ToLower(strings.TrimPrefix(msg.GetCause().String(), "CAUSE_"))
	if inv.json {
		var ch *jsonChange
		if c := msg.GetChange(); c != nil {
			j := toJSONChange(c)
			ch = &j
		}
		return inv.emitJSON(struct {
			Change     *jsonChange `json:"change,omitempty"`
			Cause      string      `json:"cause,omitempty"`
			Zookie     string      `json:"zookie"`
			Time       string      `json:"time"`
			Checkpoint bool        `json:"checkpoint"`
		}{ch, map[bool]string{true: "", false: cause}[msg.GetCheckpoint()], zk, at, msg.GetCheckpoint()})
	}
	if msg.GetCheckpoint() {
		inv.printf("// checkpoint %s at %s\n", zk, at)
		return nil
	}
	inv.printf("%s (%s at %s)\n", changeLine(msg.GetChange()), cause, zk)
	return nil
}
