package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/internal/progress"
)

const relationshipUsage = "pemba relationship write|delete|read|count|import|export [flags] ..."

// maxBatch is the most updates per WriteRelationships call and
// relationships per ImportRelationships message the server accepts by
// default.
const maxBatch = 1000

// maxImportBytes bounds the relationships of one ImportRelationships
// message, well below the server's 4 MiB per message.
const maxImportBytes = 2 << 20

func relationshipCommand(ctx context.Context, inv *invocation, args []string) error {
	return inv.subcommand(ctx, args, map[string]func(context.Context, *invocation, []string) error{
		"write":  relationshipWrite,
		"delete": relationshipDelete,
		"read":   relationshipRead,
		"import": relationshipImport,
		"export": relationshipExport,
		"count":  relationshipCount,
	}, relationshipUsage)
}

var operations = map[string]pb.RelationshipUpdate_Operation{
	"touch":  pb.RelationshipUpdate_OPERATION_TOUCH,
	"create": pb.RelationshipUpdate_OPERATION_CREATE,
	"delete": pb.RelationshipUpdate_OPERATION_DELETE,
}

// relationshipWrite writes the tuples given as arguments and read from
// --file all or nothing: every line is parsed, checked against the
// server's schema and checked for duplicates before anything is sent, and
// the updates then go in one WriteRelationships call. Touches too many for
// one call go through ImportRelationships, which commits them at one
// revision too; creates and deletes too many for one call are refused
// with nothing written. Every error about an input names its FILE:LINE (or
// argument).
func relationshipWrite(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba relationship write [--op touch|create|delete] [--file FILE|-] [flags] TUPLE..."
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	opName := fs.String("op", "touch", "operation: touch (create or replace), create (fail if it exists) or delete")
	file := fs.String("file", "", "read tuples from `FILE` (- for standard input), one per line; // comments")
	reason := reasonFlag(fs)
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	op, ok := operations[*opName]
	if !ok {
		return usagef(usage, "unknown --op %q (want touch, create or delete)", *opName)
	}
	if len(pos) == 0 && *file == "" {
		return usagef(usage, "no tuples: give them as arguments or with --file")
	}
	w := &batchWrite{op: op, from: &origins{name: displayName(*file)}, keys: map[string]int{}, reason: *reason}
	for i, s := range pos {
		r, err := tuple.Parse(s)
		if err != nil {
			return usagef(usage, "argument %d: %v", i+1, err)
		}
		w.from.addArg()
		if err := w.add(r); err != nil {
			return err
		}
	}
	if *file != "" {
		in, err := inv.openInput(*file)
		if err != nil {
			return err
		}
		err = readTuples(in, displayName(*file), func(r tuple.Relationship, line int) error {
			w.from.addLine(line)
			return w.add(r)
		})
		in.Close()
		if _, isStatus := status.FromError(err); err != nil && !isStatus {
			err = fmt.Errorf("%w (nothing was written)", err)
		}
		if err != nil {
			return err
		}
	}
	if len(w.updates) == 0 {
		return fmt.Errorf("%s holds no tuples", displayName(*file))
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	if op != pb.RelationshipUpdate_OPERATION_DELETE {
		sc := newSchemaCheck(ctx, c)
		now := inv.env.now()
		for i, r := range w.rels {
			if err := sc.check(r); err != nil {
				return badInput(w.from.must(i), err, "nothing was written")
			}
			if r.ExpiredAt(now) {
				inv.warnf("warning: %s: relationship %s expired at %s: it is written but grants nothing\n",
					w.from.must(i), r, r.Expiration.UTC().Format(time.RFC3339))
			}
		}
	}
	zk, err := w.send(ctx, c)
	if err != nil {
		return err
	}
	if inv.json {
		return inv.emitJSON(struct {
			Zookie  string `json:"zookie"`
			Written int    `json:"written"`
		}{zk, len(w.updates)})
	}
	if op == pb.RelationshipUpdate_OPERATION_DELETE {
		// A delete of an absent relationship commits and changes nothing:
		// the server does not say which were there.
		inv.infof("%s deleted or already absent\n", counted(len(w.updates), "relationship"))
	} else {
		inv.infof("%s written (%s)\n", counted(len(w.updates), "relationship"), *opName)
	}
	inv.printf("%s\n", zk)
	return nil
}

// batchWrite is the input of relationship write, validated, to be sent
// as one atomic change.
type batchWrite struct {
	op      pb.RelationshipUpdate_Operation
	from    *origins
	rels    []tuple.Relationship
	updates []*pb.RelationshipUpdate
	keys    map[string]int // relationship key -> position
	reason  string         // for the audit log
}

// add appends the relationship whose origin was just recorded. One write
// changes a relationship once (the server refuses a second update of it),
// so a repeat is refused here, naming both lines.
func (w *batchWrite) add(r tuple.Relationship) error {
	i := len(w.rels)
	key := r.Key().String()
	if j, dup := w.keys[key]; dup {
		return badInput(w.from.must(i), fmt.Errorf("relationship %s is also updated by %s; one write changes a relationship once", key, w.from.must(j)), "nothing was written")
	}
	p, err := client.Relationship(r)
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was written)", w.from.must(i), err)
	}
	w.keys[key] = i
	w.rels = append(w.rels, r)
	w.updates = append(w.updates, &pb.RelationshipUpdate{Operation: w.op, Relationship: p})
	return nil
}

// send commits the updates atomically and returns the zookie.
func (w *batchWrite) send(ctx context.Context, c *client.Client) (string, error) {
	loc := &locator{from: w.from, keys: w.keys, outcome: "nothing was written"}
	touch := w.op == pb.RelationshipUpdate_OPERATION_TOUCH
	if touch && len(w.updates) > maxBatch {
		return w.importAll(ctx, c, nil)
	}
	resp, err := c.Permissions.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: w.updates, OptionalReason: w.reason})
	if err == nil {
		return resp.GetWrittenAt().GetToken(), nil
	}
	if !tooManyUpdates(err) {
		return "", loc.locate(err)
	}
	// Too many updates (or bytes) for one write; nothing was written.
	if touch {
		return w.importAll(ctx, c, err)
	}
	return "", w.tooLarge(err, "")
}

// tooManyUpdates reports whether err refuses a write for its size as a
// whole (the server's updates per write, gRPC's message size) rather than
// for one of its updates.
func tooManyUpdates(err error) bool {
	msg := status.Convert(err).Message()
	return status.Code(err) == codes.ResourceExhausted && !reWritePath.MatchString(msg) && !reUpdate.MatchString(msg)
}

// tooLarge explains a refusal of the whole input as one write.
func (w *batchWrite) tooLarge(cause error, more string) error {
	hint := fmt.Sprintf("split the input into writes of at most %d updates", limitOf(cause, maxBatch))
	switch w.op {
	case pb.RelationshipUpdate_OPERATION_TOUCH:
	case pb.RelationshipUpdate_OPERATION_CREATE:
		hint += ", or use `pemba relationship import`, which loads any number at once but replaces existing relationships instead of failing"
	case pb.RelationshipUpdate_OPERATION_DELETE:
		hint += ", or delete by filter with `pemba relationship delete`"
	}
	return status.Errorf(codes.ResourceExhausted, "%d updates are more than one atomic write holds (%s)%s; nothing was written: %s",
		len(w.updates), status.Convert(cause).Message(), more, hint)
}

var reLimitOf = regexp.MustCompile(`limit of (\d+)`)

// limitOf reads the limit a server's error names, or returns def.
func limitOf(err error, def int) int {
	if m := reLimitOf.FindStringSubmatch(status.Convert(err).Message()); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			return n
		}
	}
	return def
}

// importAll sends touches through ImportRelationships: the server commits
// them at one revision, or nothing. writeErr is why a single write did not
// do (nil: not tried).
func (w *batchWrite) importAll(ctx context.Context, c *client.Client, writeErr error) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loc := &locator{from: w.from, keys: w.keys, outcome: "nothing was written"}
	unimplemented := func(err error) error {
		if writeErr == nil {
			writeErr = status.Errorf(codes.ResourceExhausted, "a server takes at most %d updates per write by default", maxBatch)
		}
		return w.tooLarge(writeErr, fmt.Sprintf(", and the server does not implement ImportRelationships (%s)", status.Convert(err).Message()))
	}
	stream, err := c.Permissions.ImportRelationships(ctx)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return "", unimplemented(err)
		}
		return "", err
	}
	rels := make([]*pb.Relationship, len(w.updates))
	for i, u := range w.updates {
		rels[i] = u.GetRelationship()
	}
	var sendErr error
	for _, b := range importBatches(rels) {
		loc.msgStarts = append(loc.msgStarts, b.start)
		if sendErr = stream.Send(&pb.ImportRelationshipsRequest{Relationships: b.rels, OptionalReason: w.reason}); sendErr != nil {
			break
		}
	}
	if sendErr != nil && !errors.Is(sendErr, io.EOF) {
		return "", sendErr
	}
	// After io.EOF from Send the server's reason comes with CloseAndRecv.
	resp, err := stream.CloseAndRecv()
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return "", unimplemented(err)
		}
		return "", loc.locate(err)
	}
	return resp.GetWrittenAt().GetToken(), nil
}

func relationshipDelete(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba relationship delete --resource-type T [--resource-id ID] [--relation R] [--subject TYPE[:ID[#REL]]] [--limit N [--allow-partial]] [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	ff := registerFilterFlags(fs)
	limit := fs.Uint("limit", 0, "delete at most N; if more match, fail unless --allow-partial (0: no limit)")
	partial := fs.Bool("allow-partial", false, "with --limit, delete N and report that more remain")
	reason := reasonFlag(fs)
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
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
		RelationshipFilter: filter, OptionalLimit: uint32(*limit), OptionalAllowPartialDeletions: *partial, OptionalReason: *reason,
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
		inv.infof("%s deleted\n", counted(resp.GetRelationshipsDeletedCount(), "relationship"))
	} else {
		inv.infof("%s deleted; more match (run again to continue)\n", counted(resp.GetRelationshipsDeletedCount(), "relationship"))
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
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
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
		inv.infof("%s read at %s\n", counted(lim.n, "relationship"), zk)
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
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
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
	rep := progress.New(inv.env.Stderr, "exporting", progress.Options{Unit: "relationships"})
	err = recvEach(stream, func(msg *pb.ExportRelationshipsResponse) error {
		zk = msg.GetExportedAt().GetToken()
		for _, r := range msg.GetRelationships() {
			if err := inv.emitRelationship(r, zk); err != nil {
				return err
			}
			n++
		}
		rep.Add(len(msg.GetRelationships()))
		return nil
	})
	rep.Finish()
	if err != nil {
		return err
	}
	inv.infof("%s exported%s\n", counted(n, "relationship"), atSuffix(zk))
	return nil
}

func isEmptyFilter(f *pb.RelationshipFilter) bool {
	return f.GetResourceType() == "" && f.GetOptionalResourceId() == "" && f.GetOptionalRelation() == "" && f.GetOptionalSubjectFilter() == nil
}
