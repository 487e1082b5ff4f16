package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxAuditUpdates bounds the updates in one QueryAudit message; a bigger
// entry (an import) is split across messages, as Watch splits a
// transaction.
const MaxAuditUpdates = 1000

// auditor implements pb.AuditServiceServer.
type auditor struct {
	pb.UnimplementedAuditServiceServer
	s *Server
}

// withAuditNote returns ctx annotated for the audit log of a write: the
// call's request id and the reason the request gives. A write without an
// acceptable x-request-id (as the HTTP listener accepts them) gets a new
// one, sent back in the response header x-request-id, so that every entry
// can be matched with its call.
func withAuditNote(ctx context.Context, reason string) context.Context {
	given := requestIDOf(ctx)
	id := requestID(given)
	if id != given {
		// Best effort: a header that cannot be set (the call is over)
		// changes nothing about the write.
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	}
	return engine.WithAuditNote(ctx, id, reason)
}

// authorizeAuditRead is the audit handlers' own check, behind the
// interceptor's (the method table of scope.go, which gives AuditService
// the read_audit scope and refuses it to tenant keys): it refuses a
// caller without read_audit, a tenant key (the log holds every tenant's
// writes, callers, reasons and whole schemas, and its chain cannot be
// verified in parts) and, when authentication is on, an anonymous
// caller, so that exempting a method prefix by mistake cannot expose the
// log.
func (s *Server) authorizeAuditRead(ctx context.Context, fullMethod string) error {
	p := PrincipalOf(ctx)
	if s.auth.Load().enabled() && p == anonymous {
		return fmt.Errorf("%w: reading the audit log needs a key", ErrUnauthenticated)
	}
	if !p.Scopes.Has(ScopeReadAudit) {
		return &ScopeError{Caller: p.Name, Method: shortMethod(fullMethod), Missing: ScopeReadAudit}
	}
	if p.Tenant != "" {
		return fmt.Errorf("%w: %s is not served to tenant keys (caller %q is bound to tenant %q)",
			ErrPermissionDenied, shortMethod(fullMethod), p.Name, p.Tenant)
	}
	return nil
}

// QueryAudit streams the matching audit entries.
func (a *auditor) QueryAudit(req *pb.QueryAuditRequest, stream pb.AuditService_QueryAuditServer) error {
	ctx := stream.Context()
	if err := a.s.authorizeAuditRead(ctx, pb.AuditService_QueryAudit_FullMethodName); err != nil {
		return err
	}
	q, err := auditQueryFromProto(req)
	if err != nil {
		return err
	}
	seq, err := a.s.eng.QueryAudit(ctx, q)
	if err != nil {
		return cursorErr(err)
	}
	for r, err := range seq {
		if err != nil {
			return err
		}
		e := r.Entry
		updates := make([]*pb.RelationshipUpdate, 0, len(e.Changes))
		for _, c := range e.Changes {
			rel, err := convert.Relationship(c.Relationship)
			if err != nil {
				return err
			}
			updates = append(updates, &pb.RelationshipUpdate{Operation: opToProto(c.Op), Relationship: rel})
		}
		for {
			n := min(len(updates), MaxAuditUpdates)
			msg := &pb.QueryAuditResponse{
				Entry: &pb.AuditEntry{
					Revision: uint64(e.Revision), WrittenAt: zookieToProto(r.Zookie), CommittedAt: timestamppb.New(e.Time),
					Caller: e.Caller, RequestId: e.RequestID, Reason: e.Reason, Operation: e.Operation,
					Updates: updates[:n], SchemaChanged: e.SchemaChanged, Schema: e.Schema, Hash: e.Hash.String(),
				},
				MoreInEntry: n < len(updates),
			}
			updates = updates[n:]
			if !msg.MoreInEntry {
				msg.AfterEntry = &pb.Cursor{Token: r.Cursor}
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
			if len(updates) == 0 {
				break
			}
		}
	}
	return nil
}

// auditQueryFromProto converts and checks a query; the engine checks the
// rest (names, the time range, the cursor).
func auditQueryFromProto(req *pb.QueryAuditRequest) (engine.AuditQuery, error) {
	q := engine.AuditQuery{
		ResourceType: req.GetOptionalResourceType(), ResourceID: req.GetOptionalResourceId(),
		Relation: req.GetOptionalRelation(), Caller: req.GetOptionalCaller(),
		Cursor: req.GetOptionalCursor().GetToken(), Limit: int(req.GetOptionalLimit()),
	}
	var err error
	if q.Since, err = timeFromProto("optional_since", req.GetOptionalSince()); err != nil {
		return q, err
	}
	if q.Until, err = timeFromProto("optional_until", req.GetOptionalUntil()); err != nil {
		return q, err
	}
	if q.ResourceType != "" {
		if err := checkType("optional_resource_type", q.ResourceType); err != nil {
			return q, err
		}
	}
	if q.ResourceID != "" {
		if q.ResourceType == "" {
			return q, missing("optional_resource_type")
		}
		if err := checkID("optional_resource_id", q.ResourceID, true); err != nil {
			return q, err
		}
	}
	if q.Relation != "" {
		if err := checkRelation("optional_relation", q.Relation); err != nil {
			return q, err
		}
	}
	if sf := req.GetOptionalSubjectFilter(); sf != nil {
		// The subject filter of a relationship filter, converted as
		// filterFromProto does.
		f, err := filterFromProto("", &pb.RelationshipFilter{ResourceType: "x", OptionalSubjectFilter: sf}, false)
		if err != nil {
			return q, fieldErr("optional_subject_filter", err)
		}
		q.Subject = f.Subject
	}
	return q, nil
}

// timeFromProto converts an optional timestamp (nil: the zero time).
func timeFromProto(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fieldErr(field, fmt.Errorf("%w: %w", engine.ErrInvalidRequest, err))
	}
	return ts.AsTime(), nil
}

// VerifyAudit recomputes the chain and reports the first mismatch.
func (a *auditor) VerifyAudit(ctx context.Context, req *pb.VerifyAuditRequest) (*pb.VerifyAuditResponse, error) {
	if err := a.s.authorizeAuditRead(ctx, pb.AuditService_VerifyAudit_FullMethodName); err != nil {
		return nil, err
	}
	rep, err := a.s.eng.VerifyAudit(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.VerifyAuditResponse{
		Ok:             rep.Mismatch == nil,
		AnchorRevision: uint64(rep.Anchor.Revision), AnchorHash: rep.Anchor.Hash.String(),
		EntriesVerified: uint64(rep.Entries),
		HeadRevision:    uint64(rep.Head), HeadHash: rep.HeadHash.String(),
	}
	if m := rep.Mismatch; m != nil {
		resp.FirstMismatch = &pb.AuditMismatch{Revision: uint64(m.Revision), Reason: m.Reason}
		var zero engine.AuditHash
		if m.Stored != zero || m.Computed != zero {
			resp.FirstMismatch.StoredHash = hex.EncodeToString(m.Stored[:])
			resp.FirstMismatch.ComputedHash = hex.EncodeToString(m.Computed[:])
		}
	}
	return resp, nil
}
