package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// The audit log: every committed write (WriteRelationships,
// DeleteRelationships, Import, WriteSchema) is recorded by the datastore
// in the same commit as the write, with its caller, request id, reason and
// exact changes, hash-chained and kept for the datastore's audit retention
// rather than its GC window (see store.AuditLog). It is always on: a log
// that could be switched off would prove nothing about the writes made
// while it was off, and it costs a few microseconds per write
// (docs/benchmarks.md).

// The audit log's vocabulary, defined by package store.
type (
	// AuditEntry is one committed write as the audit log keeps it.
	AuditEntry = store.AuditEntry
	// AuditHash is an entry's SHA-256 chain hash.
	AuditHash = store.AuditHash
	// AuditAnchor is the revision and hash the retained chain starts from.
	AuditAnchor = store.AuditAnchor
	// AuditReport is the outcome of VerifyAudit.
	AuditReport = store.AuditReport
	// AuditMismatch names the first entry that does not verify.
	AuditMismatch = store.AuditMismatch
)

// ErrNoAuditLog: the datastore keeps no audit log (every built-in one
// does; a custom store.Store may not).
var ErrNoAuditLog = errors.New("engine: the datastore keeps no audit log")

// MaxReasonBytes bounds the reason a caller gives for a write.
const MaxReasonBytes = 1024

// Names of the writes, as the audit log records them (AuditEntry.Operation).
const (
	OpNameWriteRelationships  = "WriteRelationships"
	OpNameDeleteRelationships = "DeleteRelationships"
	OpNameImportRelationships = "ImportRelationships"
	OpNameWriteSchema         = "WriteSchema"
	// OpNameRebuildNestedIndex names the writes of RebuildNestedIndex,
	// whose changes (reserved rows) the audit log does not show.
	OpNameRebuildNestedIndex = "RebuildNestedIndex"
)

// auditNote is what WithAuditNote attaches to a context.
type auditNote struct {
	requestID, reason string
}

type auditNoteKey struct{}

// WithAuditNote returns a context under which the writes the engine makes
// record requestID and reason in the audit log. They are request-scoped
// annotations, optional (a write without them records empty ones), so
// they travel with the request's context rather than widening every
// write's signature; the caller, which is not optional, stays a
// parameter.
func WithAuditNote(ctx context.Context, requestID, reason string) context.Context {
	return context.WithValue(ctx, auditNoteKey{}, auditNote{requestID: requestID, reason: reason})
}

// writeMeta is the store.WriteMeta of a write by caller of kind op under
// ctx. It refuses a reason that is too long or not UTF-8.
func writeMeta(ctx context.Context, caller, op string) (store.WriteMeta, error) {
	n, _ := ctx.Value(auditNoteKey{}).(auditNote)
	if len(n.reason) > MaxReasonBytes {
		return store.WriteMeta{}, &LimitError{Limit: "bytes of reason", Max: MaxReasonBytes, Got: len(n.reason)}
	}
	if !utf8.ValidString(n.reason) {
		return store.WriteMeta{}, fmt.Errorf("%w: the reason is not valid UTF-8", ErrInvalidRequest)
	}
	return store.WriteMeta{Caller: caller, RequestID: n.requestID, Reason: n.reason, Operation: op}, nil
}

// AuditQuery selects audit entries. Every set condition must hold; the
// change conditions (Resource*, Relation, Subject) must hold for one
// change of the entry.
type AuditQuery struct {
	// Since and Until, when non-zero, bound the commit time: Since <=
	// time < Until.
	Since, Until time.Time
	// ResourceType, and with it optionally ResourceID, select entries
	// that change a relationship of that object type (or object).
	ResourceType, ResourceID string
	// Relation selects entries that change a relationship with that
	// relation.
	Relation string
	// Subject selects entries that change a relationship of that subject
	// (Type required; ID and Relation optional, as tuple.SubjectFilter).
	Subject *tuple.SubjectFilter
	// Caller selects the entries of one caller (a key name).
	Caller string
	// Cursor resumes after the entry whose AuditResult.Cursor it is.
	Cursor string
	// Limit stops after this many entries; 0 means no limit.
	Limit int
}

// AuditResult is one entry of a query.
type AuditResult struct {
	Entry AuditEntry
	// Zookie names the entry's revision (readable while inside the GC
	// window).
	Zookie string
	// Cursor resumes a query after this entry (AuditQuery.Cursor). It is
	// the zookie of the entry's revision.
	Cursor string
}

// auditLog returns the datastore's audit log.
func (e *Engine) auditLog() (store.AuditLog, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	a, ok := e.st.(store.AuditLog)
	if !ok {
		return nil, ErrNoAuditLog
	}
	return a, nil
}

// QueryAudit returns the audit entries matching q, in revision order. It
// checks q before returning; the sequence fails only with the datastore.
func (e *Engine) QueryAudit(ctx context.Context, q AuditQuery) (iter.Seq2[AuditResult, error], error) {
	a, err := e.auditLog()
	if err != nil {
		return nil, err
	}
	f, err := e.auditFilter(q)
	if err != nil {
		return nil, err
	}
	return func(yield func(AuditResult, error) bool) {
		for entry, err := range a.AuditEntries(ctx, f) {
			if err != nil {
				yield(AuditResult{}, err)
				return
			}
			entry.Changes, _ = hideChanges(entry.Changes)
			if f.Changes != nil && !slices.ContainsFunc(entry.Changes, func(c store.Change) bool { return f.Changes.Matches(c.Relationship) }) {
				continue // it matched through reserved rows only
			}
			z := e.zookieOf(entry.Revision)
			if !yield(AuditResult{Entry: entry, Zookie: z, Cursor: z}, nil) {
				return
			}
		}
	}, nil
}

// auditFilter checks q and converts it.
func (e *Engine) auditFilter(q AuditQuery) (store.AuditFilter, error) {
	f := store.AuditFilter{Since: q.Since, Until: q.Until, Caller: q.Caller, Limit: q.Limit}
	switch {
	case q.Limit < 0:
		return f, fmt.Errorf("%w: negative limit %d", ErrInvalidRequest, q.Limit)
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until):
		return f, fmt.Errorf("%w: since (%s) is not before until (%s)", ErrInvalidRequest,
			q.Since.UTC().Format(time.RFC3339Nano), q.Until.UTC().Format(time.RFC3339Nano))
	case q.ResourceID != "" && q.ResourceType == "":
		return f, fmt.Errorf("%w: a resource id needs its resource type", ErrInvalidRequest)
	}
	if q.ResourceType != "" {
		if err := tuple.ValidateType("resource type", q.ResourceType); err != nil {
			return f, err
		}
	}
	if q.ResourceID != "" {
		if err := tuple.ValidateID("resource id", q.ResourceID, true); err != nil {
			return f, err
		}
	}
	if q.Relation != "" {
		if err := tuple.ValidateRelation("relation", q.Relation); err != nil {
			return f, err
		}
	}
	if s := q.Subject; s != nil {
		if err := tuple.ValidateType("subject type", s.Type); err != nil {
			return f, err
		}
		if s.ID != "" {
			if err := tuple.ValidateID("subject id", s.ID, true); err != nil {
				return f, err
			}
		}
		if s.Relation != "" && s.Relation != tuple.Ellipsis {
			if err := tuple.ValidateRelation("subject relation", s.Relation); err != nil {
				return f, err
			}
		}
	}
	if q.ResourceType != "" || q.Relation != "" || q.Subject != nil {
		f.Changes = &tuple.Filter{ResourceType: q.ResourceType, ResourceID: q.ResourceID, Relation: q.Relation, Subject: q.Subject}
	}
	if q.Cursor != "" {
		// The cursor is the zookie of the last entry seen, refused as a
		// cursor (not as a zookie) when it is not one of this store's.
		rev, err := token.DecodeZookie(e.fingerprint, q.Cursor)
		if err != nil {
			return f, fmt.Errorf("%w: %v", ErrInvalidCursor, err)
		}
		f.After = store.Revision(rev)
	}
	return f, nil
}

// VerifyAudit recomputes the audit log's hash chain and reports the first
// entry that does not match (store.VerifyAudit).
func (e *Engine) VerifyAudit(ctx context.Context) (AuditReport, error) {
	a, err := e.auditLog()
	if err != nil {
		return AuditReport{}, err
	}
	return store.VerifyAudit(ctx, a)
}
