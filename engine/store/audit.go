package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"iter"
	"time"

	"github.com/pemba-authz/pemba/engine/store/internal/wire"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// The audit log.
//
// Every committed write (Update and Import) also writes one AuditEntry, in
// the same atomic commit as the write itself, so that the log never holds
// an entry without its write nor a write without its entry. Unlike the
// changelog behind Watch, the audit log is not removed by GC: it is kept
// for its own retention (PruneAudit), which may be forever.
//
// Entries are hash-chained. An entry's hash is
//
//	SHA-256(previous entry's hash || canonical encoding of the entry)
//
// where the canonical encoding (AppendAuditEncoding) starts with its
// version byte. The chain starts at an AuditAnchor: the revision and hash
// of the entry before the oldest one kept (revision 0 and a zero hash for
// a new store; the revision at which the log began for a store that
// predates it; the last pruned entry after PruneAudit). VerifyAudit walks
// the chain from the anchor and names the first entry that does not match.
// Editing an entry's stored bytes without also fixing its stored hash is
// reported at that entry; rewriting both is reported at the next entry,
// whose hash covers the old one; rewriting the whole tail from some entry
// on is detected only against a head hash recorded elsewhere (VerifyAudit
// returns it for that purpose).

// AuditHash is an entry's chain hash.
type AuditHash [sha256.Size]byte

// String returns the hash in lower-case hex.
func (h AuditHash) String() string { return hex.EncodeToString(h[:]) }

// AuditEntry is one committed write as the audit log keeps it.
type AuditEntry struct {
	Revision Revision
	// Time is the commit time (UTC), the same as the ChangeSet's.
	Time time.Time
	// Caller, RequestID, Reason and Operation come from the write's
	// WriteMeta.
	Caller    string
	RequestID string
	Reason    string
	Operation string
	// Changes lists exactly what the write changed, as its ChangeSet does.
	Changes []Change
	// SchemaChanged is set when the write replaced the schema; Schema is
	// then the new text.
	SchemaChanged bool
	Schema        string
	// Hash is the chain hash stored with the entry. Entries read through
	// AuditEntries are not verified; use VerifyAudit.
	Hash AuditHash
}

// AuditAnchor is where the retained chain starts: the revision and hash of
// the entry just before the oldest retained one.
type AuditAnchor struct {
	Revision Revision
	Hash     AuditHash
}

// AuditFilter selects audit entries. The zero value selects every entry.
type AuditFilter struct {
	// Since and Until, when non-zero, bound the commit time: Since <=
	// Time < Until.
	Since, Until time.Time
	// Caller, when set, selects the entries of that caller only.
	Caller string
	// Changes, when set, selects the entries with at least one change
	// whose relationship it matches (tuple.Filter.Matches; ResourceType
	// may be empty here). Schema-only entries never match it.
	Changes *tuple.Filter
	// After resumes after this revision (a paging cursor: the last
	// revision seen).
	After Revision
	// Limit stops after this many entries; 0 means no limit.
	Limit int
}

// Matches reports whether e is selected by f (After and Limit aside).
func (f AuditFilter) Matches(e *AuditEntry) bool {
	if !f.MatchesHeader(e.Time, e.Caller) {
		return false
	}
	if f.Changes == nil {
		return true
	}
	for _, c := range e.Changes {
		if f.Changes.Matches(c.Relationship) {
			return true
		}
	}
	return false
}

// Take passes e to yield when it matches f, counting it in taken, and
// reports whether a backend's query should go on: false once yield stops
// or f.Limit entries were passed. Every backend's QueryAudit ends its loop
// with it, so the filter and the limit mean the same on each.
func (f AuditFilter) Take(e AuditEntry, taken *int, yield func(AuditEntry, error) bool) bool {
	if !f.Matches(&e) {
		return true
	}
	if !yield(e, nil) {
		return false
	}
	*taken++
	return f.Limit <= 0 || *taken < f.Limit
}

// MatchesHeader reports whether an entry committed at t by caller passes
// f's time and caller conditions, so that a backend can skip an entry
// before decoding its changes.
func (f AuditFilter) MatchesHeader(t time.Time, caller string) bool {
	if !f.Since.IsZero() && t.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !t.Before(f.Until) {
		return false
	}
	return f.Caller == "" || caller == f.Caller
}

// AuditRecord is an entry as stored, for verification: the revision the
// backend filed it under, its stored hash, and its canonical encoding.
type AuditRecord struct {
	Revision Revision
	Hash     AuditHash
	Encoding []byte
}

// AuditLog is implemented by stores that keep the audit log; every
// backend in this repository does (storetest checks it).
type AuditLog interface {
	// AuditEntries yields the committed entries matching f in revision
	// order.
	AuditEntries(ctx context.Context, f AuditFilter) iter.Seq2[AuditEntry, error]
	// AuditChain returns the anchor, the head revision, and the stored
	// records from the anchor up to that head in revision order, as they
	// are stored, for VerifyAudit.
	AuditChain(ctx context.Context) (AuditAnchor, Revision, iter.Seq2[AuditRecord, error], error)
	// PruneAudit removes the entries committed before cutoff, except the
	// newest entry (so the chain keeps a head to extend), and moves the
	// anchor to the last one removed.
	PruneAudit(ctx context.Context, cutoff time.Time) (removed int, err error)
}

// auditVersion1 is the first version of the canonical encoding.
const auditVersion1 = 1

// Canonical encoding, version 1 (strings are uvarint length, bytes; times
// are varint Unix seconds, uvarint nanoseconds):
//
//	byte      version (1)
//	uvarint   revision
//	time      commit time
//	string    caller, request id, reason, operation
//	byte      1 if the schema changed, then string schema text; else 0
//	changes   each: byte op (1..3); string resource type, resource id,
//	          relation, subject type, subject id, subject relation; byte
//	          flags (1: caveat, 2: expiration); caveat: string name,
//	          string context (tuple.FormatContext, "" for none);
//	          expiration: time
//	byte      0 (end of changes)
//	uvarint   number of changes
//
// The changes end with a terminator rather than starting with a count so
// that a bulk import can be encoded while it streams.

// AppendAuditHeader appends the part of e's encoding before its changes.
func AppendAuditHeader(b []byte, e *AuditEntry) []byte {
	b = append(b, auditVersion1)
	b = binary.AppendUvarint(b, uint64(e.Revision))
	b = appendAuditTime(b, e.Time)
	for _, s := range []string{e.Caller, e.RequestID, e.Reason, e.Operation} {
		b = appendAuditString(b, s)
	}
	if e.SchemaChanged {
		b = append(b, 1)
		return appendAuditString(b, e.Schema)
	}
	return append(b, 0)
}

// AppendAuditChange appends the encoding of one change.
func AppendAuditChange(b []byte, c Change) []byte {
	r := c.Relationship
	b = append(b, byte(c.Op))
	for _, s := range []string{r.Resource.Type, r.Resource.ID, r.Relation, r.Subject.Type, r.Subject.ID, r.Subject.Relation} {
		b = appendAuditString(b, s)
	}
	var flags byte
	if c.Op != OpDelete {
		if r.Caveat != nil {
			flags |= 1
		}
		if !r.Expiration.IsZero() {
			flags |= 2
		}
	}
	b = append(b, flags)
	if flags&1 != 0 {
		b = appendAuditString(b, r.Caveat.Name)
		ctx := ""
		if r.Caveat.Context != nil {
			ctx = tuple.FormatContext(r.Caveat.Context)
		}
		b = appendAuditString(b, ctx)
	}
	if flags&2 != 0 {
		b = appendAuditTime(b, r.Expiration)
	}
	return b
}

// AppendAuditTrailer appends the end of an encoding holding n changes.
func AppendAuditTrailer(b []byte, n int) []byte {
	b = append(b, 0)
	return binary.AppendUvarint(b, uint64(n))
}

// AppendAuditEncoding appends the whole canonical encoding of e (its Hash
// aside).
func AppendAuditEncoding(b []byte, e *AuditEntry) []byte {
	b = AppendAuditHeader(b, e)
	for _, c := range e.Changes {
		b = AppendAuditChange(b, c)
	}
	return AppendAuditTrailer(b, len(e.Changes))
}

// ChainAuditHash returns the hash of an entry whose canonical encoding is
// enc and whose predecessor's hash is prev.
func ChainAuditHash(prev AuditHash, enc []byte) AuditHash {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(enc)
	var out AuditHash
	h.Sum(out[:0])
	return out
}

func appendAuditString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendAuditTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// AuditHeader is the decoded part of an encoding before its changes.
type AuditHeader struct {
	Revision                             Revision
	Time                                 time.Time
	Caller, RequestID, Reason, Operation string
	SchemaChanged                        bool
	Schema                               string
}

// DecodeAuditHeader decodes the header of an encoding without its
// changes (a backend filters on it before decoding the rest).
func DecodeAuditHeader(enc []byte) (AuditHeader, error) {
	d := newAuditDecoder(enc)
	h := d.header()
	return h, d.Err
}

// DecodeAuditEntry decodes a whole canonical encoding. It fails with
// ErrCorrupt on anything but exactly one well-formed version 1 encoding.
// The Hash of the result is zero.
func DecodeAuditEntry(enc []byte) (AuditEntry, error) {
	d := newAuditDecoder(enc)
	h := d.header()
	e := AuditEntry{
		Revision: h.Revision, Time: h.Time, Caller: h.Caller, RequestID: h.RequestID, Reason: h.Reason,
		Operation: h.Operation, SchemaChanged: h.SchemaChanged, Schema: h.Schema,
	}
	for d.Err == nil {
		op := Op(d.Byte())
		if op == 0 || d.Err != nil {
			break
		}
		if op != OpTouch && op != OpCreate && op != OpDelete {
			d.Fail(fmt.Sprintf("unknown op %d", op))
			break
		}
		var r tuple.Relationship
		r.Resource.Type, r.Resource.ID, r.Relation = d.String(), d.String(), d.String()
		r.Subject.Type, r.Subject.ID, r.Subject.Relation = d.String(), d.String(), d.String()
		flags := d.Byte()
		if flags&^3 != 0 || op == OpDelete && flags != 0 {
			d.Fail(fmt.Sprintf("bad change flags %#x", flags))
			break
		}
		if flags&1 != 0 {
			r.Caveat = &tuple.Caveat{Name: d.String()}
			if ctx := d.String(); ctx != "" && d.Err == nil {
				m, err := tuple.ParseContext(ctx)
				if err != nil {
					d.Fail("caveat context: " + err.Error())
					break
				}
				r.Caveat.Context = m
			}
		}
		if flags&2 != 0 {
			r.Expiration = d.Time()
		}
		e.Changes = append(e.Changes, Change{Op: op, Relationship: r})
	}
	if n := d.Uvarint(); d.Err == nil && n != uint64(len(e.Changes)) {
		d.Fail(fmt.Sprintf("trailer counts %d changes, found %d", n, len(e.Changes)))
	}
	d.End()
	if d.Err != nil {
		return AuditEntry{}, d.Err
	}
	return e, nil
}

// auditDecoder reads an audit entry's encoding; the first error sticks.
type auditDecoder struct{ wire.Decoder }

func newAuditDecoder(enc []byte) *auditDecoder {
	return &auditDecoder{wire.Decoder{B: enc, Corrupt: corruptAudit}}
}

// corruptAudit is the error of an audit entry's encoding refused for why.
func corruptAudit(why string) error {
	return fmt.Errorf("store: audit entry: %s: %w", why, ErrCorrupt)
}

func (d *auditDecoder) header() AuditHeader {
	var h AuditHeader
	if v := d.Byte(); d.Err == nil && v != auditVersion1 {
		d.Fail(fmt.Sprintf("unknown encoding version %d", v))
	}
	h.Revision = Revision(d.Uvarint())
	h.Time = d.Time()
	h.Caller, h.RequestID, h.Reason, h.Operation = d.String(), d.String(), d.String(), d.String()
	switch d.Byte() {
	case 0:
	case 1:
		h.SchemaChanged = true
		h.Schema = d.String()
	default:
		d.Fail("bad schema flag")
	}
	return h
}

// AuditReport is the outcome of VerifyAudit.
type AuditReport struct {
	// Anchor is where the verified chain starts.
	Anchor AuditAnchor
	// Entries counts the entries checked (up to the first mismatch).
	Entries int
	// Head is the revision of the last entry checked, HeadHash its hash:
	// record it elsewhere to detect a later rewrite of the whole tail.
	Head     Revision
	HeadHash AuditHash
	// Mismatch describes the first entry that does not match; nil when
	// the whole chain verifies.
	Mismatch *AuditMismatch
}

// AuditMismatch names the first entry of a chain that does not verify.
type AuditMismatch struct {
	// Revision is the revision of the entry (or of the missing entry).
	Revision Revision
	// Reason says what does not match.
	Reason string
	// Stored and Computed are the stored hash and the one recomputed
	// from the stored encoding and the previous entry, when the entry
	// decodes.
	Stored, Computed AuditHash
}

// VerifyAudit recomputes the hash chain of log from its anchor to its
// head and reports the first entry that does not match: a hash that is not
// SHA-256(previous hash || encoding), an encoding that does not decode or
// names another revision than the one it is filed under, or a missing
// entry (the log must hold one entry per revision after the anchor, up to
// the head).
func VerifyAudit(ctx context.Context, log AuditLog) (AuditReport, error) {
	anchor, head, records, err := log.AuditChain(ctx)
	if err != nil {
		return AuditReport{}, err
	}
	rep := AuditReport{Anchor: anchor, Head: anchor.Revision, HeadHash: anchor.Hash}
	prev, want := anchor.Hash, anchor.Revision+1
	for rec, err := range records {
		if err != nil {
			return AuditReport{}, err
		}
		if rec.Revision != want {
			rep.Mismatch = &AuditMismatch{Revision: want, Reason: fmt.Sprintf("entry missing (next stored entry is revision %d)", rec.Revision)}
			if rec.Revision < want {
				rep.Mismatch = &AuditMismatch{Revision: rec.Revision, Reason: fmt.Sprintf("entry out of order (expected revision %d)", want)}
			}
			return rep, nil
		}
		computed := ChainAuditHash(prev, rec.Encoding)
		e, derr := DecodeAuditEntry(rec.Encoding)
		switch {
		case derr != nil:
			rep.Mismatch = &AuditMismatch{Revision: rec.Revision, Reason: derr.Error(), Stored: rec.Hash, Computed: computed}
		case e.Revision != rec.Revision:
			rep.Mismatch = &AuditMismatch{Revision: rec.Revision, Reason: fmt.Sprintf("entry names revision %d", e.Revision), Stored: rec.Hash, Computed: computed}
		case computed != rec.Hash:
			rep.Mismatch = &AuditMismatch{Revision: rec.Revision, Reason: "hash mismatch", Stored: rec.Hash, Computed: computed}
		}
		if rep.Mismatch != nil {
			return rep, nil
		}
		rep.Entries++
		rep.Head, rep.HeadHash = rec.Revision, rec.Hash
		prev, want = rec.Hash, want+1
	}
	if rep.Head != head {
		rep.Mismatch = &AuditMismatch{Revision: rep.Head + 1, Reason: fmt.Sprintf("entry missing (the log ends at revision %d, the store at %d)", rep.Head, head)}
	}
	return rep, nil
}
