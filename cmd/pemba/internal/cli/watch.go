package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// watchCommand streams committed transactions until the context ends
// (Ctrl-C), which is a normal exit. A broken connection (Unavailable) is
// resumed from the last transaction printed, with backoff.
func watchCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba watch [--zookie Z] [--object-type T]... [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	zookie := fs.String("zookie", "", "stream the changes after this zookie's revision (default: after the head)")
	var types stringList
	fs.Var(&types, "object-type", "only changes to resources of this `type` (repeatable)")
	noResume := fs.Bool("no-resume", false, "exit 1 when the connection breaks instead of resuming after the last change printed")
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q", pos)
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	req := &pb.WatchRequest{OptionalObjectTypes: types}
	if *zookie != "" {
		req.OptionalStartCursor = &pb.Zookie{Token: *zookie}
	}
	delay := minResumeDelay
	connected := false // a server that was never reached is a failure, not a blip
	for {
		err := inv.watchOnce(ctx, c, req, func() { connected = true }, func() { delay = minResumeDelay })
		if err = watchEnd(ctx, err); err == nil || *noResume || !connected || status.Code(err) != codes.Unavailable {
			return err
		}
		// The server went away (a restart, a network blip): resume after
		// the last transaction printed, so nothing is missed or repeated.
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

// Bounds of the delay between attempts to resume a broken watch.
const (
	minResumeDelay = 100 * time.Millisecond
	maxResumeDelay = 5 * time.Second
)

// watchOnce streams one Watch call, advancing req's start cursor past
// every transaction printed; opened is called once the stream is open,
// progress after each transaction.
func (inv *invocation) watchOnce(ctx context.Context, c *client.Client, req *pb.WatchRequest, opened, progress func()) error {
	stream, err := c.Watch.Watch(ctx, req)
	if err != nil {
		return err
	}
	opened()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		if err := inv.emitChange(msg); err != nil {
			return err
		}
		if zk := msg.GetChangesThrough(); zk.GetToken() != "" {
			req.OptionalStartCursor = zk
		}
		progress()
	}
}

// watchEnd maps the end of a watch: cancellation by the user is success.
func watchEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled) {
		return nil
	}
	return err
}

// opWord names an update's operation in text output.
func opWord(op pb.RelationshipUpdate_Operation) string {
	return strings.ToLower(strings.TrimPrefix(op.String(), "OPERATION_"))
}

// emitChange prints one transaction: a // header line with its zookie,
// caller and commit time, then one "operation tuple" line per change.
func (inv *invocation) emitChange(msg *pb.WatchResponse) error {
	at := ""
	if ts := msg.GetCommittedAt(); ts != nil {
		at = ts.AsTime().UTC().Format(time.RFC3339Nano)
	}
	if inv.json {
		type update struct {
			Operation    string           `json:"operation"`
			Relationship jsonRelationship `json:"relationship"`
		}
		ups := []update{}
		for _, u := range msg.GetUpdates() {
			r, err := client.FromRelationship(u.GetRelationship())
			if err != nil {
				return err
			}
			ups = append(ups, update{opWord(u.GetOperation()), toJSONRelationship(r)})
		}
		return inv.emitJSON(struct {
			Zookie        string   `json:"zookie"`
			Caller        string   `json:"caller"`
			CommittedAt   string   `json:"committed_at,omitempty"`
			SchemaChanged bool     `json:"schema_changed"`
			Updates       []update `json:"updates"`
		}{msg.GetChangesThrough().GetToken(), msg.GetCaller(), at, msg.GetSchemaChanged(), ups})
	}
	header := "// " + msg.GetChangesThrough().GetToken()
	if msg.GetCaller() != "" {
		header += " by " + msg.GetCaller()
	}
	if at != "" {
		header += " at " + at
	}
	if msg.GetSchemaChanged() {
		header += " (schema changed)"
	}
	inv.printf("%s\n", header)
	for _, u := range msg.GetUpdates() {
		r, err := client.FromRelationship(u.GetRelationship())
		if err != nil {
			return err
		}
		inv.printf("%s %s\n", opWord(u.GetOperation()), r)
	}
	return nil
}
