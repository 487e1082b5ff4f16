package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Sentinel errors: one per concept. Every error the engine returns wraps
// one of these (or, for a malformed name or ID, tuple.ErrInvalid), so a
// caller tells failures apart with errors.Is alone. Where a lower package
// already names the concept (a compacted revision is store's, a schema
// that does not compile is schema's), the engine's name is that same
// sentinel, not a second one: errors.Is(err, ErrSnapshotExpired) and
// errors.Is(err, store.ErrRevisionCompacted) are one test. Callers above
// the engine use the engine's names. How each becomes a gRPC status is
// decided in one table, in package api/server, and nowhere else.
var (
	// ErrClosed: the engine (or its datastore) was closed.
	ErrClosed = store.ErrClosed
	// ErrNoSchema: no schema has been written yet.
	ErrNoSchema = errors.New("engine: no schema has been written")
	// ErrInvalidSchema: the schema text does not compile; the error lists
	// every problem with its position.
	ErrInvalidSchema = schema.ErrInvalidSchema
	// ErrUnsafeSchemaChange: the new schema removes a relation or an
	// allowed subject type that stored relationships still use; see
	// *UnsafeSchemaChangeError.
	ErrUnsafeSchemaChange = errors.New("engine: schema change would orphan stored relationships")
	// ErrSchemaChanged: a permission diff or watch spans a schema write;
	// see *SchemaChangedError.
	ErrSchemaChanged = errors.New("engine: schema changed between the revisions")
	// ErrDeprecated: the request writes, checks or looks up a relation or
	// permission marked @deprecated, and the engine refuses such requests
	// (Options.Deprecation is DeprecationRefuse).
	ErrDeprecated = errors.New("engine: deprecated relation or permission")

	// ErrInvalidZookie: the zookie is garbage, tampered with, or was minted
	// by another datastore. It wraps the token package's reason
	// (token.ErrInvalid or token.ErrOtherStore).
	ErrInvalidZookie = errors.New("engine: invalid zookie")
	// ErrFutureZookie: the zookie names a revision newer than the head of
	// the store; see *FutureZookieError. The engine never waits for such
	// a revision.
	ErrFutureZookie = store.ErrRevisionFuture
	// ErrSnapshotExpired: an exact snapshot, a cursor or a watch names a
	// revision that has been garbage collected.
	ErrSnapshotExpired = store.ErrRevisionCompacted
	// ErrInvalidCursor: a paging cursor (ReadRelationships, LookupResources,
	// LookupSubjects) is garbage, of an older format, or was minted for
	// another request or datastore.
	ErrInvalidCursor = errors.New("engine: invalid cursor")
	// ErrInvalidRequest: a request is malformed (a missing field, a bad
	// consistency mode, an empty ID).
	ErrInvalidRequest = eval.ErrInvalidRequest

	// ErrInvalidRelationship: a relationship does not fit the schema in
	// force; see *RelationshipError, which also wraps one of the reasons
	// below.
	ErrInvalidRelationship = errors.New("engine: invalid relationship")
	// ErrDuplicateUpdate: one write request names the same relationship
	// twice; see *DuplicateUpdateError.
	ErrDuplicateUpdate = errors.New("engine: relationship updated twice in one request")
	// ErrPreconditionFailed: a write precondition did not hold; see
	// *PreconditionError.
	ErrPreconditionFailed = errors.New("engine: precondition failed")
	// ErrInvariantViolated: a write would break an invariant of the
	// schema; nothing was written. See *InvariantError.
	ErrInvariantViolated = errors.New("engine: invariant violated")
	// ErrLimitExceeded: a request is larger than a configured limit; see
	// *LimitError.
	ErrLimitExceeded = errors.New("engine: request exceeds a limit")

	// ErrUnknownDefinition: a request names an object type the schema
	// lacks (see *eval.UnknownDefinitionError), or a relationship does.
	ErrUnknownDefinition = eval.ErrUnknownDefinition
	// ErrUnknownRelation: a request or a relationship names a relation or
	// permission its definition lacks.
	ErrUnknownRelation = eval.ErrUnknownRelation
	// ErrMaxDepth: evaluation followed a path longer than the maximum
	// depth, so the answer is unknown; see *eval.MaxDepthError.
	ErrMaxDepth = eval.ErrMaxDepth
	// ErrCaveat: a caveat could not be evaluated with the request's
	// context (a value of the wrong type); see *eval.CaveatError.
	ErrCaveat = eval.ErrCaveat
	// ErrUnknownStoredCaveat: a stored relationship names a caveat the
	// schema in force lacks (the data and the schema disagree; compare
	// ErrUnknownCaveat, a write naming one).
	ErrUnknownStoredCaveat = eval.ErrUnknownCaveat
	// ErrLookupTooLarge: a lookup reached more objects than
	// Limits.MaxLookupNodes. The engine reports it as a *LimitError
	// (ErrLimitExceeded); the sentinel is the evaluator's.
	ErrLookupTooLarge = eval.ErrLookupTooLarge
	// ErrMemoryBudget: the request would have held more memory than
	// Limits.MemoryBudget leaves to it beside the requests in flight; see
	// *eval.MemoryBudgetError. Nothing was written; retry later.
	ErrMemoryBudget = eval.ErrMemoryBudget

	// ErrRelationshipExists: a create found a relationship with the same
	// key; see *store.AlreadyExistsError.
	ErrRelationshipExists = store.ErrAlreadyExists
	// ErrUnavailable: the datastore could not be reached; nothing was
	// written, so the call may be retried.
	ErrUnavailable = store.ErrUnavailable
	// ErrCommitUnknown: a write's commit got no answer from the
	// datastore; it may or may not have been applied. Read at the newest
	// revision before retrying it.
	ErrCommitUnknown = store.ErrCommitUnknown

	// ErrBackupUnsupported: the datastore cannot copy itself online
	// (memory; PostgreSQL, which pg_dump backs up).
	ErrBackupUnsupported = errors.New("engine: this datastore cannot be backed up by pemba")
	// ErrBackupInvalid: a backup is incomplete or damaged (a file missing,
	// of the wrong size or checksum, or not in the manifest); the error
	// names the file.
	ErrBackupInvalid = errors.New("engine: invalid backup")
	// ErrBackupFormat: a backup's manifest version, datastore kind or
	// storage format is not one this binary restores.
	ErrBackupFormat = errors.New("engine: backup format not supported")
	// ErrBackupTargetNotEmpty: a backup or restore was pointed at a
	// directory that already holds files.
	ErrBackupTargetNotEmpty = errors.New("engine: target directory not empty")
)

// Reasons a relationship is rejected. A *RelationshipError wraps exactly one
// of these, ErrUnknownDefinition or ErrUnknownRelation (or a tuple.ErrInvalid
// error for a malformed name or ID, or a *LimitError for a caveat context
// over the limit).
var (
	// ErrWriteToPermission: the relation is a permission, which is computed.
	ErrWriteToPermission = errors.New("cannot write to a permission")
	// ErrSubjectNotAllowed: the relation's type list does not include the
	// subject's type, subject relation or wildcard.
	ErrSubjectNotAllowed = errors.New("subject type not allowed")
	// ErrCaveatRequired: the subject type is allowed only with a caveat.
	ErrCaveatRequired = errors.New("caveat required")
	// ErrUnknownCaveat: the schema declares no caveat of that name.
	ErrUnknownCaveat = errors.New("unknown caveat")
	// ErrCaveatNotAllowed: the caveat exists but is not allowed on this
	// subject type of this relation.
	ErrCaveatNotAllowed = errors.New("caveat not allowed")
	// ErrExpirationNotAllowed: an expiration on a subject type declared
	// without "with expiration".
	ErrExpirationNotAllowed = errors.New("expiration not allowed")
	// ErrCaveatContext: the stored caveat context names an undeclared
	// parameter or has a value of the wrong type.
	ErrCaveatContext = errors.New("bad caveat context")
)

// Reasons a token is refused: ErrInvalidZookie or ErrInvalidCursor wraps
// one of these (named here so that callers above the engine can map a
// reason that arrives alone).
var (
	// ErrTokenMalformed: the text is not a token of the expected kind.
	ErrTokenMalformed = token.ErrInvalid
	// ErrTokenOtherStore: the token was minted by another datastore.
	ErrTokenOtherStore = token.ErrOtherStore
	// ErrTokenOtherRequest: the cursor was minted for another request.
	ErrTokenOtherRequest = token.ErrOtherRequest
)

// tokenReason is why package token refused a token, without its
// package's prefix, for an error that already says which token it was:
// "engine: invalid zookie: not base64url", not "engine: invalid zookie:
// token: invalid: not base64url".
func tokenReason(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{token.ErrInvalid, token.ErrOtherStore, token.ErrOtherRequest} {
		if errors.Is(err, sentinel) {
			if rest, ok := strings.CutPrefix(msg, sentinel.Error()+": "); ok {
				return rest
			}
			return strings.TrimPrefix(msg, "token: ")
		}
	}
	return msg
}

// tokenError wraps a token's refusal under outer (ErrInvalidZookie),
// keeping both for errors.Is but saying the reason once.
type tokenError struct{ outer, reason error }

func (e *tokenError) Error() string   { return e.outer.Error() + ": " + tokenReason(e.reason) }
func (e *tokenError) Unwrap() []error { return []error{e.outer, e.reason} }

// Datastore failures the engine passes through unchanged.
var (
	// ErrBatchTooLarge: a transaction exceeds the datastore's own
	// per-transaction limit; nothing was written.
	ErrBatchTooLarge = store.ErrBatchTooLarge
	// ErrCorrupt: stored bytes do not decode (a bug or a damaged
	// datastore).
	ErrCorrupt = store.ErrCorrupt
	// ErrTxDone: a transaction was used after its update returned (a bug).
	ErrTxDone = store.ErrTxDone
)

// Typed errors of package eval, named here for callers above the engine.
type (
	// MaxDepthError is the error that matches ErrMaxDepth: the path that
	// went too deep and whether the data loops.
	MaxDepthError = eval.MaxDepthError
	// CaveatError is the error that matches ErrCaveat.
	CaveatError = eval.CaveatError
)

// RelationshipError says why one relationship of a request was rejected.
type RelationshipError struct {
	// Index is the position of the update in the request (-1 when the
	// relationship did not come from an indexed list, as in Import).
	Index        int
	Relationship tuple.Relationship
	// Reason is ErrUnknownDefinition, ErrUnknownRelation or one of
	// ErrWriteToPermission ... ErrCaveatContext, a
	// tuple.ErrInvalid error for a malformed name or ID, or a *LimitError
	// for a caveat context over the limit.
	Reason error
	// Detail is one sentence for humans.
	Detail string
	// List names what Index counts in the message ("" means "update";
	// "contextual relationship" for a read's contextual relationships).
	List string
}

// Error implements error.
func (e *RelationshipError) Error() string {
	var b strings.Builder
	b.WriteString("engine: ")
	if e.Index >= 0 {
		list := e.List
		if list == "" {
			list = "update"
		}
		fmt.Fprintf(&b, "%s %d: ", list, e.Index)
	}
	fmt.Fprintf(&b, "relationship %s: %v", e.Relationship, e.Reason)
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap makes errors.Is match both ErrInvalidRelationship and the reason.
func (e *RelationshipError) Unwrap() []error { return []error{ErrInvalidRelationship, e.Reason} }

// DuplicateUpdateError names a relationship that one request updates twice.
type DuplicateUpdateError struct {
	Key           tuple.Key
	First, Second int // indexes of the two updates
}

// Error implements error.
func (e *DuplicateUpdateError) Error() string {
	return fmt.Sprintf("engine: updates %d and %d both change relationship %s", e.First, e.Second, e.Key)
}

// Is makes errors.Is(err, ErrDuplicateUpdate) true.
func (e *DuplicateUpdateError) Is(target error) bool { return target == ErrDuplicateUpdate }

// PreconditionError names the precondition that did not hold.
type PreconditionError struct {
	Index        int
	Precondition Precondition
}

// Error implements error.
func (e *PreconditionError) Error() string {
	want := "no relationship matches"
	if e.Precondition.MustExist {
		want = "a relationship matches"
	}
	return fmt.Sprintf("engine: precondition %d failed: expected that %s filter %s", e.Index, want, formatFilter(e.Precondition.Filter))
}

// Is makes errors.Is(err, ErrPreconditionFailed) true.
func (e *PreconditionError) Is(target error) bool { return target == ErrPreconditionFailed }

// InvariantError names the schema invariant a write would break, the
// object it would break it on, and the change of the write that asked for
// the check. Nothing was written.
type InvariantError struct {
	// Invariant is "definition.name"; Condition its condition.
	Invariant, Condition string
	Object               tuple.ObjectRef
	// Index is the update's index in the write request; -1 for a
	// relationship deleted by a filter.
	Index        int
	Op           store.Op
	Relationship tuple.Key
	// Detail says what is wrong after the write.
	Detail string
}

// Error implements error.
func (e *InvariantError) Error() string {
	by := fmt.Sprintf("update %d (%s %s)", e.Index, e.Op, e.Relationship)
	if e.Index < 0 {
		by = fmt.Sprintf("deleting %s", e.Relationship)
	}
	return fmt.Sprintf("engine: invariant %s (%s) violated on %s by %s: %s", e.Invariant, e.Condition, e.Object, by, e.Detail)
}

// Is makes errors.Is(err, ErrInvariantViolated) true.
func (e *InvariantError) Is(target error) bool { return target == ErrInvariantViolated }

// DeleteLimitError refuses a limited delete without AllowPartial when more
// relationships match than its Limit; nothing was deleted.
type DeleteLimitError struct {
	Limit int
}

func (e *DeleteLimitError) Error() string {
	return fmt.Sprintf("engine: precondition failed: more than the limit of %d relationships match the delete's filter; allow a partial delete to delete that many", e.Limit)
}

// Is makes a *DeleteLimitError match ErrPreconditionFailed.
func (e *DeleteLimitError) Is(target error) bool { return target == ErrPreconditionFailed }

// LimitError reports a request larger than a limit.
type LimitError struct {
	Limit string // which limit, e.g. "updates per write"
	Max   int
	Got   int
	// Hint, when set, says how to stay within the limit.
	Hint string
}

// Error implements error.
func (e *LimitError) Error() string {
	msg := fmt.Sprintf("engine: %d %s exceeds the limit of %d", e.Got, e.Limit, e.Max)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrLimitExceeded) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimitExceeded }

// FutureZookieError reports a zookie newer than the store's head revision.
type FutureZookieError struct {
	Requested store.Revision
	Head      store.Revision
}

// Error implements error.
func (e *FutureZookieError) Error() string {
	return fmt.Sprintf("engine: zookie names revision %d but the store's head is %d (the token is from the future or from a store that was reset)", e.Requested, e.Head)
}

// Is makes errors.Is(err, ErrFutureZookie) true.
func (e *FutureZookieError) Is(target error) bool { return target == ErrFutureZookie }

// SchemaUse is one thing a schema change removes that stored relationships
// still use.
type SchemaUse struct {
	// What names the removed item, e.g. `relation document#viewer` or
	// `subject type user:* on document#viewer`.
	What string
	// Count is how many stored relationships use it (counting stops at
	// the engine's scan limit; see Truncated).
	Count int
	// Truncated reports that counting stopped early.
	Truncated bool
}

// UnsafeSchemaChangeError lists every removed item still in use.
type UnsafeSchemaChangeError struct {
	Uses []SchemaUse
}

// Error implements error.
func (e *UnsafeSchemaChangeError) Error() string {
	var b strings.Builder
	b.WriteString("engine: schema change would orphan stored relationships:")
	for i, u := range e.Uses {
		if i > 0 {
			b.WriteByte(';')
		}
		more := ""
		if u.Truncated {
			more = " or more"
		}
		fmt.Fprintf(&b, " %s is removed but %d%s relationships still use it", u.What, u.Count, more)
	}
	b.WriteString(" (delete them first)")
	return b.String()
}

// Is makes errors.Is(err, ErrUnsafeSchemaChange) true.
func (e *UnsafeSchemaChangeError) Is(target error) bool { return target == ErrUnsafeSchemaChange }

func formatFilter(f tuple.Filter) string {
	var b strings.Builder
	b.WriteByte('{')
	sep := ""
	add := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s%s: %q", sep, k, v)
			sep = ", "
		}
	}
	add("resource_type", f.ResourceType)
	add("resource_id", f.ResourceID)
	add("relation", f.Relation)
	if f.Subject != nil {
		add("subject_type", f.Subject.Type)
		add("subject_id", f.Subject.ID)
		add("subject_relation", f.Subject.Relation)
	}
	b.WriteByte('}')
	return b.String()
}
