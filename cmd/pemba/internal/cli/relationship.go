package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

const relationshipUsage = "pemba relationship write|delete|read|import|export [flags] ..."

// maxBatch is the most updates per WriteRelationships call and
// relationships per ImportRelationships message the server accepts.
const maxBatch = 1000

func relationshipCommand(ctx context.Context, inv *invocation, args []string) error {
	return inv.subcommand(ctx, args, map[string]func(context.Context, *invocation, []string) error{
		"write":  relationshipWrite,
		"delete": relationshipDelete,
		"read":   relationshipRead,
		"import": relationshipImport,
		"export": relationshipExport,
	}, relationshipUsage)
}

var operations = map[string]pb.RelationshipUpdate_Operation{
	"touch":  pb.RelationshipUpdate_OPERATION_TOUCH,
	"create": pb.RelationshipUpdate_OPERATION_CREATE,
	"delete": pb.RelationshipUpdate_OPERATION_DELETE,
}

// relationshipWrite writes the tuples given as arguments and read from
// --file in one atomic write; more than maxBatch are split into several
// writes, each atomic, and the last zookie is printed.
func relationshipWrite(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba relationship write [--op touch|create|delete] [--file FILE|-] [flags] TUPLE..."
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	opName := fs.String("op", "touch", "operation: touch (create or replace), create (fail if it exists) or delete")
	file := fs.String("file", "", "read tuples from `FILE` (- for standard input), one per line; // comments")
	out := outputFlag(fs)
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return err
	}
	if err := inv.setOutput(usage, *out); err != nil {
		return err
	}
	op, ok := operations[*opName]
	if !ok {
		return usagef(usage, "unknown --op %q (want touch, create or delete)", *opName)
	}
	if len(pos) == 0 && *file == "" {
		return usagef(usage, "no tuples: give them as arguments or with --file")
	}
	var updates []*pb.RelationshipUpdate
	add := func(r tuple.Relationship) error {
		p, err := client.Relationship(r)
		if err != nil {
			return err
		}
		updates = append(updates, &pb.RelationshipUpdate{Operation: op, Relationship: p})
		return nil
	}
	for i, s := range pos {
		r, err := tuple.Parse(s)
		if err != nil {
			return usagef(usage, "argument %d: %v", i+1, err)
		}
		if err := add(r); err != nil {
			return err
		}
	}
	if *file != "" {
		in, err := inv.openInput(*file)
		if err != nil {
			return err
		}
		err = readTuples(in, displayName(*file), add)
		in.Close()
		if err != nil {
			return err
		}
	}
	if len(updates) == 0 {
		return fmt.Errorf("%s holds no tuples", displayName(*file))
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(updates) > maxBatch {
		inv.infof("%d updates: writing them in %d transactions of at most %d\n", len(updates), (len(updates)+maxBatch-1)/maxBatch, maxBatch)
	}
	var zk *pb.Zookie
	for start := 0; start < len(updates); start += maxBatch {
		end := min(start+maxBatch, len(updates))
		resp, err := c.Permissions.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: updates[start:end]})
		if err != nil {
			if start > 0 {
				return fmt.Errorf("after writing %d of %d updates: %w", start, len(updates), err)
			}
			return err
		}
		zk = resp.GetWrittenAt()
	}
	if inv.json {
		return inv.emitJSON(struct {
			Zookie  string `json:"zookie"`
			Written int    `json:"written"`
		}{zk.GetToken(), len(updates)})
	}
	inv.infof("%d relationships written (%s)\n", len(updates), *opName)
	inv.printf("%s\n", zk.GetToken())
	return nil
}

func relationshipDelete(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba relationship delete --resource-type T [--resource-id ID] [--relation R] [--subject TYPE[:ID[#REL]]] [--limit N [--allow-partial]] [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	ff := registerFilterFlags(fs)
	limit := fs.Uint("limit", 0, "delete at most N; if more match, fail unless --allow-partial (0: no limit)")
	partial := fs.Bool("allow-partial", false, "with --limit, delete N and report that more remain")
	out := outputFlag(fs)
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return err
	}
	if err := inv.setOutput(usage, *out); err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q", pos)
	}
	if ff.resourceType == "" {
		return usagef(usage, "--resource-type is required")
	}
	if *partial && *limit == 0 {
		return usagef(usage, "--allow-partial needs --limit")
	}
	if *limit > 1<<32-1 {
		return usagef(usage, "--limit %d is too large", *limit)
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
	resp, err := c.Permissions.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{
		RelationshipFilter: filter, OptionalLimit: uint32(*limit), OptionalAllowPartialDeletions: *partial,
	})
	if err != nil {
		return err
	}
	complete := resp.GetDeletionProgress() != pb.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL
	if inv.json {
		return inv.emitJSON(struct {
			Zookie   string `json:"zookie"`
			Deleted  uint64 `json:"deleted"`
			Complete bool   `json:"complete"`
		}{resp.GetDeletedAt().GetToken(), resp.GetRelationshipsDeletedCount(), complete})
	}
	if complete {
		inv.infof("%d relationships deleted\n", resp.GetRelationshipsDeletedCount())
	} else {
		inv.infof("%d relationships deleted; more match (run again to continue)\n", resp.GetRelationshipsDeletedCount())
	}
	inv.printf("%s\n", resp.GetDeletedAt().GetToken())
	return nil
}

// relationshipRead reads in pages of --page-size, each resumed from the
// previous one's last cursor, so all pages come from one revision.
func relationshipRead(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba relationship read [--resource-type T] [--resource-id ID] [--relation R] [--subject TYPE[:ID[#REL]]] [--limit N] [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	rf := consistencyFlags(fs)
	ff := registerFilterFlags(fs)
	limit := fs.Int("limit", 0, "print at most N relationships, and say so when more match (0: all)")
	pageSize := fs.Int("page-size", maxBatch, "relationships per request")
	out := outputFlag(fs)
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return err
	}
	if err := inv.setOutput(usage, *out); err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q (filters are flags)", pos)
	}
	if *limit < 0 || *pageSize < 1 || *pageSize > 1<<31 {
		return usagef(usage, "--limit must be at least 0 and --page-size at least 1")
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
	lim := &limiter{limit: *limit}
	var (
		cursor *pb.Cursor
		zk     string
	)
	for {
		size := lim.size(*pageSize)
		req := &pb.ReadRelationshipsRequest{RelationshipFilter: filter, OptionalLimit: uint32(size), OptionalCursor: cursor}
		if cursor == nil {
			req.Consistency = cons
		}
		got, err := func() (int, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := c.Permissions.ReadRelationships(ctx, req)
			if err != nil {
				return 0, err
			}
			got := 0
			err = recvEach(stream, func(msg *pb.ReadRelationshipsResponse) error {
				got++
				if !lim.take() {
					return errLimitReached
				}
				cursor, zk = msg.GetAfterResultCursor(), msg.GetReadAt().GetToken()
				return inv.emitRelationship(msg.GetRelationship(), zk)
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
	if zk != "" {
		inv.infof("%d relationships read at %s\n", lim.n, zk)
	} else {
		inv.infof("0 relationships\n")
	}
	inv.warnf("%s", lim.notice("relationships"))
	return nil
}

// emitRelationship prints one relationship: its tuple, or in JSON its
// parts and the zookie it was read at.
func (inv *invocation) emitRelationship(p *pb.Relationship, zk string) error {
	r, err := client.FromRelationship(p)
	if err != nil {
		return err
	}
	if inv.json {
		return inv.emitJSON(struct {
			jsonRelationship
			Zookie string `json:"zookie"`
		}{toJSONRelationship(r), zk})
	}
	inv.printf("%s\n", r)
	return nil
}

func relationshipExport(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba relationship export [--resource-type T ...] [flags] > FILE"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	rf := consistencyFlags(fs)
	ff := registerFilterFlags(fs)
	out := outputFlag(fs)
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return err
	}
	if err := inv.setOutput(usage, *out); err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q", pos)
	}
	cons, err := rf.consistency(usage)
	if err != nil {
		return err
	}
	filter, err := ff.filter(usage)
	if err != nil {
		return err
	}
	if isEmptyFilter(filter) {
		filter = nil
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	stream, err := c.Permissions.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{Consistency: cons, OptionalRelationshipFilter: filter})
	if err != nil {
		return err
	}
	var zk string
	n := 0
	err = recvEach(stream, func(msg *pb.ExportRelationshipsResponse) error {
		zk = msg.GetExportedAt().GetToken()
		for _, r := range msg.GetRelationships() {
			if err := inv.emitRelationship(r, zk); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	inv.infof("%d relationships exported%s\n", n, atSuffix(zk))
	return nil
}

func isEmptyFilter(f *pb.RelationshipFilter) bool {
	return f.GetResourceType() == "" && f.GetOptionalResourceId() == "" && f.GetOptionalRelation() == "" && f.GetOptionalSubjectFilter() == nil
}
