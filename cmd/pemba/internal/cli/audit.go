package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// reasonFlag registers --reason, the reason a write records in the audit
// log.
func reasonFlag(fs *flag.FlagSet) *string {
	return fs.String("reason", "", "why: recorded with the write in the audit log (at most 1024 bytes)")
}

// auditCommand reads and verifies the server's audit log.
func auditCommand(ctx context.Context, inv *invocation, args []string) error {
	return inv.subcommand(ctx, args, map[string]func(context.Context, *invocation, []string) error{
		"query":  auditQuery,
		"verify": auditVerify,
	}, "pemba audit query|verify [flags]")
}

// auditTime reads --since/--until: an RFC 3339 time, or a duration
// meaning that long before now.
func auditTime(name, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return timestamppb.New(t), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return timestamppb.New(now.Add(-d)), nil
	}
	return nil, fmt.Errorf("--%s %q: want an RFC 3339 time (2026-12-05T10:00:00Z) or a duration before now (24h)", name, v)
}

// auditQuery streams the matching entries.
func auditQuery(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba audit query [--since T] [--until T] [--object TYPE[:ID]] [--subject TYPE[:ID][#REL]] [--relation R] [--caller NAME] [--limit N] [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	since := fs.String("since", "", "entries committed at or after `T` (RFC 3339, or a duration before now such as 24h)")
	until := fs.String("until", "", "entries committed before `T` (RFC 3339, or a duration before now)")
	object := fs.String("object", "", "entries that change a relationship of this resource type or object: TYPE or TYPE:ID")
	subject := fs.String("subject", "", "entries that change a relationship of this subject: TYPE, TYPE:ID, TYPE:ID#REL or TYPE#REL")
	relation := fs.String("relation", "", "entries that change a relationship with this relation")
	caller := fs.String("caller", "", "entries written with this key (its name)")
	limit := fs.Uint("limit", 0, "at most N entries (0: all)")
	cursor := fs.String("cursor", "", "resume after the entry this cursor names (the last one's \"cursor\" in --output json)")
	out := outputFlag(fs)
	pos, err := inv.parseOutput(fs, usage, args, out)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q", pos)
	}
	if *limit > 1<<32-1 {
		return usagef(usage, "--limit %d is too large", *limit)
	}
	req := &pb.QueryAuditRequest{OptionalRelation: *relation, OptionalCaller: *caller, OptionalLimit: uint32(*limit)}
	now := time.Now()
	if req.OptionalSince, err = auditTime("since", *since, now); err != nil {
		return usagef(usage, "%v", err)
	}
	if req.OptionalUntil, err = auditTime("until", *until, now); err != nil {
		return usagef(usage, "%v", err)
	}
	if *object != "" {
		typ, id, hasID := strings.Cut(*object, ":")
		if typ == "" || hasID && id == "" {
			return usagef(usage, "--object %q: want TYPE or TYPE:ID", *object)
		}
		req.OptionalResourceType, req.OptionalResourceId = typ, id
	}
	if *subject != "" {
		sf, err := parseSubjectFilter(*subject)
		if err != nil {
			return usagef(usage, "--subject: %v", err)
		}
		req.OptionalSubjectFilter = client.Filter(tuple.Filter{Subject: &sf}).GetOptionalSubjectFilter()
	}
	if *cursor != "" {
		req.OptionalCursor = &pb.Cursor{Token: *cursor}
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	stream, err := c.Audit.QueryAudit(ctx, req)
	if err != nil {
		return err
	}
	var cur *pb.AuditEntry // the entry being assembled from its parts
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		e := msg.GetEntry()
		if cur != nil && cur.GetRevision() == e.GetRevision() {
			cur.Updates = append(cur.Updates, e.GetUpdates()...)
		} else {
			cur = e
		}
		if msg.GetMoreInEntry() {
			continue
		}
		if err := inv.emitAuditEntry(cur, msg.GetAfterEntry().GetToken()); err != nil {
			return err
		}
		cur = nil
	}
}

// emitAuditEntry prints one entry: a // header line (revision, zookie,
// time, caller, operation, request id, reason, hash), the schema when it
// changed, then one "operation tuple" line per change.
func (inv *invocation) emitAuditEntry(e *pb.AuditEntry, cursor string) error {
	at := e.GetCommittedAt().AsTime().UTC().Format(time.RFC3339Nano)
	if inv.json {
		type update struct {
			Operation    string           `json:"operation"`
			Relationship jsonRelationship `json:"relationship"`
		}
		ups := []update{}
		for _, u := range e.GetUpdates() {
			r, err := client.FromRelationship(u.GetRelationship())
			if err != nil {
				return err
			}
			ups = append(ups, update{opWord(u.GetOperation()), toJSONRelationship(r)})
		}
		return inv.emitJSON(struct {
			Revision      uint64   `json:"revision"`
			Zookie        string   `json:"zookie"`
			CommittedAt   string   `json:"committed_at"`
			Caller        string   `json:"caller"`
			RequestID     string   `json:"request_id"`
			Reason        string   `json:"reason"`
			Operation     string   `json:"operation"`
			SchemaChanged bool     `json:"schema_changed"`
			Schema        string   `json:"schema,omitempty"`
			Updates       []update `json:"updates"`
			Hash          string   `json:"hash"`
			Cursor        string   `json:"cursor"`
		}{e.GetRevision(), e.GetWrittenAt().GetToken(), at, e.GetCaller(), e.GetRequestId(), e.GetReason(), e.GetOperation(),
			e.GetSchemaChanged(), e.GetSchema(), ups, e.GetHash(), cursor})
	}
	header := fmt.Sprintf("// revision %d %s at %s by %s: %s", e.GetRevision(), e.GetWrittenAt().GetToken(), at, e.GetCaller(), e.GetOperation())
	if id := e.GetRequestId(); id != "" {
		header += " request " + strconv.Quote(id)
	}
	if r := e.GetReason(); r != "" {
		header += " reason " + strconv.Quote(r)
	}
	inv.printf("%s\n// hash %s\n", header, e.GetHash())
	if e.GetSchemaChanged() {
		inv.printf("// schema changed (%d bytes; --output json shows it)\n", len(e.GetSchema()))
	}
	for _, u := range e.GetUpdates() {
		r, err := client.FromRelationship(u.GetRelationship())
		if err != nil {
			return err
		}
		inv.printf("%s %s\n", opWord(u.GetOperation()), r)
	}
	return nil
}

// auditVerify asks the server to verify the chain; a mismatch exits 1 and
// names the first entry that does not match.
func auditVerify(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba audit verify [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
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
	r, err := c.Audit.VerifyAudit(ctx, &pb.VerifyAuditRequest{})
	if err != nil {
		return err
	}
	m := r.GetFirstMismatch()
	if inv.json {
		type mismatch struct {
			Revision     uint64 `json:"revision"`
			Reason       string `json:"reason"`
			StoredHash   string `json:"stored_hash,omitempty"`
			ComputedHash string `json:"computed_hash,omitempty"`
		}
		var jm *mismatch
		if m != nil {
			jm = &mismatch{m.GetRevision(), m.GetReason(), m.GetStoredHash(), m.GetComputedHash()}
		}
		if err := inv.emitJSON(struct {
			OK              bool      `json:"ok"`
			AnchorRevision  uint64    `json:"anchor_revision"`
			AnchorHash      string    `json:"anchor_hash"`
			EntriesVerified uint64    `json:"entries_verified"`
			HeadRevision    uint64    `json:"head_revision"`
			HeadHash        string    `json:"head_hash"`
			FirstMismatch   *mismatch `json:"first_mismatch,omitempty"`
		}{r.GetOk(), r.GetAnchorRevision(), r.GetAnchorHash(), r.GetEntriesVerified(), r.GetHeadRevision(), r.GetHeadHash(), jm}); err != nil {
			return err
		}
	} else if m == nil {
		inv.printf("ok: %s verified%s\n", counted(r.GetEntriesVerified(), "entry"), verifiedSpan(r))
		inv.printf("head hash %s\n", r.GetHeadHash())
	} else {
		inv.printf("MISMATCH at revision %d: %s\n", m.GetRevision(), m.GetReason())
		if m.GetStoredHash() != "" {
			inv.printf("stored hash   %s\ncomputed hash %s\n", m.GetStoredHash(), m.GetComputedHash())
		}
		inv.printf("%s before it verified%s\n", counted(r.GetEntriesVerified(), "entry"), verifiedSpan(r))
	}
	if m != nil {
		return &exitError{code: ExitFailed}
	}
	return nil
}

// verifiedSpan names the revisions of the entries a verification
// checked (from the anchor's next to the head, the last one checked):
// ", revision 3", ", revisions 1 to 4", or "" for none.
func verifiedSpan(r *pb.VerifyAuditResponse) string {
	first, last := r.GetAnchorRevision()+1, r.GetHeadRevision()
	switch {
	case r.GetEntriesVerified() == 0:
		return ""
	case first == last:
		return fmt.Sprintf(", revision %d", first)
	}
	return fmt.Sprintf(", revisions %d to %d", first, last)
}
