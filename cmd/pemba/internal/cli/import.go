package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/internal/progress"
)

// maxReplay bounds the batches an import keeps to replay as writes if the
// server turns out not to implement ImportRelationships.
const maxReplay = 16

// relationshipImport streams a relationship file to ImportRelationships,
// which commits all of it at one revision or nothing. Each line is checked
// against the server's schema before it is sent; a bad line cancels the
// stream, and the error names its FILE:LINE. A server without
// ImportRelationships answers Unimplemented at once; the batches sent so
// far (at most maxReplay) and the rest of the file are then written with
// batched TOUCH writes, each its own transaction.
func relationshipImport(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba relationship import [flags] FILE|-"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	reason := reasonFlag(fs)
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(usage, "want one relationship file (or - for standard input), got %d arguments", len(pos))
	}
	in, err := inv.openInput(pos[0])
	if err != nil {
		return err
	}
	defer in.Close()
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()

	im := &importer{ctx: ctx, c: c, from: &origins{name: displayName(pos[0])}, check: newSchemaCheck(ctx, c), reason: *reason}
	rep := progress.New(inv.env.Stderr, "importing", progress.Options{Unit: "relationships"})
	err = readTuples(in, displayName(pos[0]), func(r tuple.Relationship, line int) error {
		rep.Add(1)
		return im.add(r, line)
	})
	rep.Finish()
	if err != nil {
		im.abort()
		if _, isStatus := status.FromError(err); !isStatus {
			err = fmt.Errorf("%w (%s)", err, im.outcome())
		}
		return err
	}
	loaded, zk, err := im.finish()
	if err != nil {
		return err
	}
	if inv.json {
		return inv.emitJSON(struct {
			Zookie   string `json:"zookie"`
			Imported uint64 `json:"imported"`
		}{zk, loaded})
	}
	inv.infof("%s imported\n", counted(loaded, "relationship"))
	inv.printf("%s\n", zk)
	return nil
}

// batch is relationships sent together, and the position (in the order
// read) of the first.
type batch struct {
	start int
	rels  []*pb.Relationship
}

// importBatches splits rels into messages of at most maxBatch
// relationships and maxImportBytes.
func importBatches(rels []*pb.Relationship) []batch {
	var (
		out   []batch
		cur   batch
		bytes int
	)
	for i, r := range rels {
		size := proto.Size(r)
		if len(cur.rels) > 0 && (len(cur.rels) == maxBatch || bytes+size > maxImportBytes) {
			out = append(out, cur)
			cur, bytes = batch{}, 0
		}
		if len(cur.rels) == 0 {
			cur.start = i
		}
		cur.rels = append(cur.rels, r)
		bytes += size
	}
	if len(cur.rels) > 0 {
		out = append(out, cur)
	}
	return out
}

// importer sends relationships to ImportRelationships, or after an
// Unimplemented answer, as batched writes.
type importer struct {
	ctx    context.Context
	c      *client.Client
	from   *origins
	check  *schemaCheck
	stream pb.PermissionsService_ImportRelationshipsClient
	cancel context.CancelFunc
	cur    batch
	bytes  int     // of cur
	starts []int   // the start of every message sent on stream
	sent   []batch // replay buffer, up to maxReplay batches
	replay bool    // sent is complete (nothing dropped yet)
	writes bool    // fallback: batched writes
	// written counts relationships committed by fallback writes.
	written uint64
	lastZK  string
	reason  string // for the audit log, on every message and write
}

func (im *importer) add(r tuple.Relationship, line int) error {
	pos := im.from.n
	im.from.addLine(line)
	where := im.from.must(pos)
	if err := im.check.check(r); err != nil {
		im.abort()
		return badInput(where, err, im.outcome())
	}
	p, err := client.Relationship(r)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	size := proto.Size(p)
	if n := len(im.cur.rels); n > 0 && (n == maxBatch || im.bytes+size > maxImportBytes) {
		if err := im.flush(); err != nil {
			return err
		}
	}
	if len(im.cur.rels) == 0 {
		im.cur.start = pos
	}
	im.cur.rels = append(im.cur.rels, p)
	im.bytes += size
	return nil
}

// outcome says what an import that failed has committed.
func (im *importer) outcome() string {
	if im.written > 0 {
		return fmt.Sprintf("%d relationships were written before, by the fallback writes of a server without ImportRelationships", im.written)
	}
	return "nothing was written"
}

func (im *importer) flush() error {
	if len(im.cur.rels) == 0 {
		return nil
	}
	b := im.cur
	im.cur, im.bytes = batch{}, 0
	if im.writes {
		return im.write(b)
	}
	if im.stream == nil {
		ctx, cancel := context.WithCancel(im.ctx)
		stream, err := im.c.Permissions.ImportRelationships(ctx)
		if err != nil {
			cancel()
			return err
		}
		im.stream, im.cancel, im.replay = stream, cancel, true
	}
	if im.replay {
		if len(im.sent) < maxReplay {
			im.sent = append(im.sent, b)
		} else {
			im.replay, im.sent = false, nil
		}
	}
	im.starts = append(im.starts, b.start)
	if err := im.stream.Send(&pb.ImportRelationshipsRequest{Relationships: b.rels, OptionalReason: im.reason}); err != nil {
		if !errors.Is(err, io.EOF) {
			return err
		}
		// The server ended the stream; its reason comes with CloseAndRecv.
		_, err := im.stream.CloseAndRecv()
		return im.fallBack(err)
	}
	return nil
}

// fallBack switches to writes when err says the server lacks imports;
// any other error is the import's, placed at its line.
func (im *importer) fallBack(err error) error {
	if status.Code(err) != codes.Unimplemented {
		return (&locator{from: im.from, msgStarts: im.starts, outcome: im.outcome()}).locate(err)
	}
	if !im.replay {
		return fmt.Errorf("the server does not implement ImportRelationships, and too much was sent to replay: %w", err)
	}
	sent := im.sent
	im.cancel()
	im.stream, im.sent, im.writes = nil, nil, true
	for _, b := range sent {
		if err := im.write(b); err != nil {
			return err
		}
	}
	return nil
}

func (im *importer) write(b batch) error {
	req := &pb.WriteRelationshipsRequest{Updates: make([]*pb.RelationshipUpdate, len(b.rels)), OptionalReason: im.reason}
	for i, r := range b.rels {
		req.Updates[i] = &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
	}
	resp, err := im.c.Permissions.WriteRelationships(im.ctx, req)
	if err != nil {
		located := (&locator{from: im.from, base: b.start, outcome: im.outcome()}).locate(err)
		if located == err && im.written > 0 {
			return fmt.Errorf("after writing %d relationships: %w", im.written, err)
		}
		return located
	}
	im.written += uint64(len(b.rels))
	im.lastZK = resp.GetWrittenAt().GetToken()
	return nil
}

func (im *importer) finish() (uint64, string, error) {
	if err := im.flush(); err != nil {
		im.abort()
		return 0, "", err
	}
	if im.writes || im.stream == nil {
		if im.written == 0 && !im.writes {
			return 0, "", errors.New("no relationships to import")
		}
		return im.written, im.lastZK, nil
	}
	resp, err := im.stream.CloseAndRecv()
	im.cancel()
	if err != nil {
		if ferr := im.fallBack(err); ferr != nil {
			return 0, "", ferr
		}
		return im.written, im.lastZK, nil
	}
	return resp.GetNumLoaded(), resp.GetWrittenAt().GetToken(), nil
}

// abort cancels an open import stream so that nothing is committed.
func (im *importer) abort() {
	if im.cancel != nil {
		im.cancel()
	}
}
