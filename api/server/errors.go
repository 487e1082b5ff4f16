package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// This file is the only place where errors become gRPC status codes.
// Handlers and interceptors return plain Go errors; the outermost
// error interceptor (and itemError, for the items of a bulk check) passes
// them through statusOf.

// Sentinel errors of the API layer. Malformed fields are reported as a
// *FieldError wrapping engine.ErrInvalidRequest (or the engine's own
// error), and API-layer limits as an *engine.LimitError, so the API adds
// no second sentinel for a concept the engine already names.
var (
	// ErrUnauthenticated: no bearer token, or not a configured key.
	ErrUnauthenticated = errors.New("server: unauthenticated")
	// ErrNotFound: the thing asked for does not exist (ReadSchema before
	// any schema write).
	ErrNotFound = errors.New("server: not found")
	// ErrPermissionDenied: the caller is authenticated but its scopes or
	// its tenant do not allow the call (a *ScopeError names the missing
	// scope).
	ErrPermissionDenied = errors.New("server: permission denied")
	// ErrKeyLimit: the call is over one of its key's own limits
	// (requests per second, concurrent requests).
	ErrKeyLimit = errors.New("server: key limit exceeded")
	// errPanic marks a recovered panic.
	errPanic = errors.New("server: panic")
)

// Is makes every *FieldError match engine.ErrInvalidRequest.
func (e *FieldError) Is(target error) bool { return target == engine.ErrInvalidRequest }

// ErrorDomain is the domain of the google.rpc.ErrorInfo detail attached to
// every status the server returns; its Reason is one of the Reason*
// constants, stable for clients to switch on.
const ErrorDomain = "pemba.authz"

// Reasons, in the ErrorInfo detail of a status.
const (
	ReasonUnauthenticated = "UNAUTHENTICATED"
	// ReasonPermissionDenied: a scope or tenant refusal (codes.PermissionDenied).
	ReasonPermissionDenied = "PERMISSION_DENIED"
	// ReasonKeyLimit: over the calling key's own rate or concurrency
	// limit (codes.ResourceExhausted); retry later.
	ReasonKeyLimit      = "KEY_LIMIT_EXCEEDED"
	ReasonNotFound      = "NOT_FOUND"
	ReasonLimitExceeded = "LIMIT_EXCEEDED"
	ReasonMaxDepth      = "MAX_DEPTH_EXCEEDED"
	ReasonUnavailable   = "UNAVAILABLE"
	// ReasonOverloaded: the server shed the call (RESOURCE_EXHAUSTED,
	// with a google.rpc.RetryInfo); nothing of it was done.
	ReasonOverloaded = "OVERLOADED"
	// ReasonStreamStalled: a stream cut off because its client accepted
	// no message for the server's -stream-stall-timeout
	// (codes.DeadlineExceeded); resume with the last cursor received.
	ReasonStreamStalled = "STREAM_STALLED"
	// ReasonMemoryBudget: the request would have held more memory than
	// the server's -memory-budget leaves beside the requests in flight
	// (codes.ResourceExhausted); nothing was written, retry later.
	ReasonMemoryBudget = "MEMORY_BUDGET_EXCEEDED"
	// ReasonCommitOutcomeUnknown: a write's commit got no answer from the
	// datastore; it may or may not have been applied (codes.Unknown).
	ReasonCommitOutcomeUnknown = "COMMIT_OUTCOME_UNKNOWN"
	ReasonAlreadyExists        = "RELATIONSHIP_EXISTS"
	ReasonPreconditionFailed   = "PRECONDITION_FAILED"
	// ReasonInvariantViolated: the write would break an invariant of the
	// schema; the message names it, the object and the update.
	ReasonInvariantViolated   = "INVARIANT_VIOLATED"
	ReasonSnapshotExpired     = "SNAPSHOT_EXPIRED"
	ReasonUnsafeSchemaChange  = "UNSAFE_SCHEMA_CHANGE"
	ReasonSchemaChanged       = "SCHEMA_CHANGED"
	ReasonNoSchema            = "NO_SCHEMA"
	ReasonDeprecated          = "DEPRECATED"
	ReasonUnknownStoredCaveat = "UNKNOWN_STORED_CAVEAT"
	ReasonInvalidSchema       = "INVALID_SCHEMA"
	ReasonFutureZookie        = "FUTURE_ZOOKIE"
	ReasonInvalidZookie       = "INVALID_ZOOKIE"
	ReasonInvalidCursor       = "INVALID_CURSOR"
	ReasonDuplicateUpdate     = "DUPLICATE_UPDATE"
	ReasonInvalidRelationship = "INVALID_RELATIONSHIP"
	ReasonUnknownDefinition   = "UNKNOWN_DEFINITION"
	ReasonUnknownRelation     = "UNKNOWN_RELATION"
	ReasonCaveat              = "CAVEAT_ERROR"
	ReasonInvalidArgument     = "INVALID_ARGUMENT"
	ReasonCanceled            = "CANCELED"
	ReasonDeadlineExceeded    = "DEADLINE_EXCEEDED"
	ReasonInternal            = "INTERNAL"
	// ReasonNoAuditLog: the datastore keeps no audit log (a custom
	// store; every built-in one keeps it).
	ReasonNoAuditLog = "NO_AUDIT_LOG"
	// ReasonBackupUnsupported: the datastore cannot be backed up online
	// by the server (PostgreSQL: use pg_dump).
	ReasonBackupUnsupported = "BACKUP_UNSUPPORTED"
)

// errorRule maps every error matching one of targets (errors.Is) to a code.
// The first matching rule wins, so the more specific rules come first.
type errorRule struct {
	targets []error
	code    codes.Code
	reason  string
}

// errorRules is the one table from errors to status codes: every exported
// sentinel of the engine's packages (and every typed error, through the
// sentinel its Is or Unwrap method names) is either a target here or in
// internalErrors; TestErrorTableIsComplete checks that over the source.
// One sentinel per concept: where a row lists more than one, the others
// are reasons a sentinel of the row wraps (a *RelationshipError wraps
// engine.ErrInvalidRelationship and its reason), listed so that a reason
// arriving alone maps the same.
var errorRules = []errorRule{
	{[]error{ErrUnauthenticated}, codes.Unauthenticated, ReasonUnauthenticated},
	{[]error{ErrNotFound}, codes.NotFound, ReasonNotFound},
	// Before ErrInvalidSchema: a tenant's schema that declares another's
	// names is refused for its caller, not malformed.
	{[]error{ErrPermissionDenied, schema.ErrOutsideTenant}, codes.PermissionDenied, ReasonPermissionDenied},
	{[]error{ErrKeyLimit}, codes.ResourceExhausted, ReasonKeyLimit},
	{[]error{ErrOverloaded}, codes.ResourceExhausted, ReasonOverloaded},
	{[]error{ErrStreamStalled}, codes.DeadlineExceeded, ReasonStreamStalled},
	{[]error{engine.ErrMemoryBudget}, codes.ResourceExhausted, ReasonMemoryBudget},
	// Limits first: a *FieldError or a *RelationshipError may wrap an
	// *engine.LimitError. engine.ErrBatchTooLarge is the datastore's own
	// per-transaction limit; nothing was written.
	{[]error{engine.ErrLimitExceeded, engine.ErrBatchTooLarge, engine.ErrLookupTooLarge}, codes.ResourceExhausted, ReasonLimitExceeded},
	// The answer is unknown, never a silent "no"; the status carries the
	// path (see statusOf).
	{[]error{engine.ErrMaxDepth}, codes.ResourceExhausted, ReasonMaxDepth},
	// Unavailable promises that nothing was written, so clients may retry
	// any call; a commit of unknown outcome must not be retried blindly.
	// ErrShuttingDown ends endless streams when the server stops.
	{[]error{engine.ErrClosed, engine.ErrUnavailable, ErrShuttingDown}, codes.Unavailable, ReasonUnavailable},
	{[]error{engine.ErrCommitUnknown}, codes.Unknown, ReasonCommitOutcomeUnknown},
	{[]error{engine.ErrNoAuditLog}, codes.Unimplemented, ReasonNoAuditLog},
	{[]error{engine.ErrRelationshipExists}, codes.AlreadyExists, ReasonAlreadyExists},
	{[]error{engine.ErrPreconditionFailed}, codes.FailedPrecondition, ReasonPreconditionFailed},
	{[]error{engine.ErrInvariantViolated}, codes.FailedPrecondition, ReasonInvariantViolated},
	{[]error{engine.ErrSnapshotExpired}, codes.FailedPrecondition, ReasonSnapshotExpired},
	{[]error{engine.ErrUnsafeSchemaChange}, codes.FailedPrecondition, ReasonUnsafeSchemaChange},
	{[]error{engine.ErrSchemaChanged}, codes.FailedPrecondition, ReasonSchemaChanged},
	{[]error{engine.ErrNoSchema}, codes.FailedPrecondition, ReasonNoSchema},
	{[]error{engine.ErrBackupUnsupported}, codes.FailedPrecondition, ReasonBackupUnsupported},
	// Refused by the server's policy (-deprecated refuse), not malformed.
	{[]error{engine.ErrDeprecated}, codes.FailedPrecondition, ReasonDeprecated},
	// The stored data and the schema disagree: not the request's fault.
	{[]error{engine.ErrUnknownStoredCaveat}, codes.FailedPrecondition, ReasonUnknownStoredCaveat},
	{[]error{engine.ErrInvalidSchema}, codes.InvalidArgument, ReasonInvalidSchema},
	// Never waited for: a zookie from the future means a store that was
	// reset or another store.
	{[]error{engine.ErrFutureZookie}, codes.InvalidArgument, ReasonFutureZookie},
	{[]error{engine.ErrInvalidZookie, engine.ErrTokenMalformed, engine.ErrTokenOtherStore}, codes.InvalidArgument, ReasonInvalidZookie},
	{[]error{engine.ErrInvalidCursor, engine.ErrTokenOtherRequest}, codes.InvalidArgument, ReasonInvalidCursor},
	{[]error{engine.ErrDuplicateUpdate}, codes.InvalidArgument, ReasonDuplicateUpdate},
	// Before the unknown-definition and unknown-relation rows: a write
	// naming an unknown type is an invalid relationship.
	{[]error{engine.ErrInvalidRelationship, engine.ErrWriteToPermission, engine.ErrSubjectNotAllowed,
		engine.ErrCaveatRequired, engine.ErrUnknownCaveat, engine.ErrCaveatNotAllowed,
		engine.ErrExpirationNotAllowed, engine.ErrCaveatContext}, codes.InvalidArgument, ReasonInvalidRelationship},
	{[]error{engine.ErrUnknownDefinition}, codes.InvalidArgument, ReasonUnknownDefinition},
	{[]error{engine.ErrUnknownRelation}, codes.InvalidArgument, ReasonUnknownRelation},
	{[]error{engine.ErrCaveat, schema.ErrCaveatParam, schema.ErrCaveatEval}, codes.InvalidArgument, ReasonCaveat},
	{[]error{engine.ErrInvalidRequest, tuple.ErrInvalid}, codes.InvalidArgument, ReasonInvalidArgument},
}

// internalErrors are the sentinels that deliberately match no rule and so
// become Internal: each means a bug or damage, not a fault of the caller.
var internalErrors = []struct {
	err error
	why string
}{
	{engine.ErrCorrupt, "stored bytes do not decode: a bug or a damaged datastore"},
	{schema.ErrCaveatNotCompiled, "a caveat evaluated without being compiled: a bug"},
	{engine.ErrTxDone, "a transaction used after its Update returned: a bug"},
	{errPanic, "a handler panicked: a bug"},
	{engine.ErrBackupInvalid, "a damaged backup: only the offline restore and backup writer read one"},
	{engine.ErrBackupFormat, "a backup of another format: only the offline restore reads one"},
	{engine.ErrBackupTargetNotEmpty, "a backup or restore directory in use: only the command line writes one"},
	{engine.ErrExplainMismatch, "an explanation that disagrees with its check: a bug; no explanation is sent"},
}

// classify returns the code and reason for err; ok is false for errors
// no rule knows (they become Internal).
func classify(err error) (code codes.Code, reason string, ok bool) {
	// A context error wins over whatever layer it surfaced through.
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled, ReasonCanceled, true
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded, ReasonDeadlineExceeded, true
	}
	for _, r := range errorRules {
		for _, t := range r.targets {
			if errors.Is(err, t) {
				return r.code, r.reason, true
			}
		}
	}
	return codes.Internal, ReasonInternal, false
}

// statusOf converts err (non-nil) to a status. Errors that already are
// statuses (from the gRPC library itself, say a failed Recv) pass
// through. Unknown errors become Internal with a public message and a
// reference that the log line of the cause carries too. ctx is the call's,
// for the log lines (its trace id).
func statusOf(ctx context.Context, log *slog.Logger, method string, err error) *status.Status {
	code, reason, ok := classify(err)
	if !ok {
		var gs interface{ GRPCStatus() *status.Status }
		if errors.As(err, &gs) && gs.GRPCStatus().Code() != codes.Unknown {
			return gs.GRPCStatus()
		}
		ref := newRef()
		if errors.Is(err, errPanic) {
			log.ErrorContext(ctx, "panic in handler", "method", method, "ref", ref, "panic", err.Error())
		} else {
			log.ErrorContext(ctx, "internal error", "method", method, "ref", ref, "err", err.Error())
		}
		return withReason(status.New(codes.Internal, "internal error (reference "+ref+"; the server log has the cause)"), reason)
	}
	// Datastore faults carry the database's own message (host names,
	// socket paths): log it, and tell the caller only what to do.
	switch {
	case reason == ReasonCommitOutcomeUnknown:
		log.ErrorContext(ctx, "write commit outcome unknown", "method", method, "err", err.Error())
		return withReason(status.New(code, msgCommitUnknown), reason)
	case errors.Is(err, engine.ErrUnavailable):
		log.WarnContext(ctx, "datastore unavailable", "method", method, "err", err.Error())
		return withReason(status.New(code, msgStoreUnavailable), reason)
	}
	st := status.New(code, err.Error())
	var fe *FieldError
	if errors.As(err, &fe) {
		// The field's path as data too (HTTP callers see it in the JSON
		// body), beside the reason.
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}, &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.Field, Description: fe.Err.Error()}},
		}); derr == nil {
			return d
		}
	}
	var kl *KeyLimitError
	if errors.As(err, &kl) && kl.RetryAfter > 0 {
		// When a call would be admitted, as data (the Go client and
		// gRPC's retry policies read google.rpc.RetryInfo).
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}, &errdetails.RetryInfo{
			RetryDelay: durationpb.New(kl.RetryAfter),
		}); derr == nil {
			return d
		}
	}
	var oe *OverloadError
	if errors.As(err, &oe) {
		// RetryInfo says when to come back; clients that honour it
		// (api/client does) spread their retries over the overload.
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(oe.RetryAfter)}); derr == nil {
			return d
		}
	}
	var md *engine.MaxDepthError
	if errors.As(err, &md) && len(md.Path) > 0 {
		// The message names the path; the details let a client tell a
		// loop in its data from a deep but intended nesting without
		// parsing it.
		st = withInfo(st, &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: map[string]string{
			"maxDepth":   strconv.Itoa(md.Depth),
			"pathLength": strconv.Itoa(len(md.Path)),
			"from":       md.Path[0],
			"to":         md.Path[len(md.Path)-1],
			"cycle":      strconv.FormatBool(md.Cycle),
		}})
		var xe *explainedError
		if errors.As(err, &xe) {
			// A check asked to explain: the paths that went too deep.
			if d, derr := st.WithDetails(xe.explanation); derr == nil {
				st = d
			}
		}
		return st
	}
	var ie *engine.InvariantError
	if errors.As(err, &ie) {
		// The message names them too; the details let a client tell
		// which rule refused which update without parsing it.
		return withInfo(st, &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: map[string]string{
			"invariant":    ie.Invariant,
			"condition":    ie.Condition,
			"object":       ie.Object.String(),
			"updateIndex":  strconv.Itoa(ie.Index),
			"relationship": ie.Relationship.String(),
		}})
	}
	return withReason(st, reason)
}

// Messages of datastore faults.
const (
	msgStoreUnavailable = "datastore unavailable (nothing was written); retry with backoff"
	msgCommitUnknown    = "commit outcome unknown: the datastore failed during the write's commit (a lost connection, a failed disk write), so it may or may not " +
		"have been applied; read at fully_consistent to see whether it took effect before retrying it"
)

func withReason(st *status.Status, reason string) *status.Status {
	return withInfo(st, &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
}

func withInfo(st *status.Status, info *errdetails.ErrorInfo) *status.Status {
	d, err := st.WithDetails(info)
	if err != nil {
		return st
	}
	return d
}

// itemError converts the failure of one item of a bulk request.
func itemError(ctx context.Context, log *slog.Logger, method string, err error) *pb.ItemError {
	st := statusOf(ctx, log, method, err)
	return &pb.ItemError{Code: int32(st.Code()), Message: st.Message()}
}

// newRef returns a short random reference for correlating an Internal
// status with its log line.
func newRef() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
