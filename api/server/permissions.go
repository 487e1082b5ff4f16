package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"

	"github.com/pemba-authz/pemba/api/internal/convert"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// permissions implements pb.PermissionsServiceServer.
type permissions struct {
	pb.UnimplementedPermissionsServiceServer
	s *Server
}

func (p *permissions) eng() *engine.Engine { return p.s.eng }

// ReadRelationships streams the matches of a filter, page by page, all at
// the revision of the first page. Every relationship carries the engine's
// cursor that resumes after it; the handler only passes cursors through.
func (p *permissions) ReadRelationships(req *pb.ReadRelationshipsRequest, stream pb.PermissionsService_ReadRelationshipsServer) error {
	ctx := stream.Context()
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	f, err := filterFromProto("relationship_filter", req.GetRelationshipFilter(), false)
	if err != nil {
		return err
	}
	who := PrincipalOf(ctx)
	if err := who.FilterErr("relationship_filter", f); err != nil {
		return err
	}
	cursor := req.GetOptionalCursor().GetToken()
	limit := int(req.GetOptionalLimit())
	pageMax := p.eng().Limits().MaxReadPageSize
	sent := 0
	for {
		size := pageMax
		if limit > 0 {
			size = min(pageMax, limit-sent)
		}
		page, err := p.eng().ReadRelationships(ctx, c, f, size, cursor)
		if err != nil {
			return cursorErr(err)
		}
		pz := zookieToProto(page.Zookie)
		for i, r := range page.Relationships {
			if !who.Sees(r) {
				continue
			}
			pr, err := convert.Relationship(r)
			if err != nil {
				return err
			}
			msg := &pb.ReadRelationshipsResponse{
				ReadAt:            pz,
				Relationship:      pr,
				AfterResultCursor: &pb.Cursor{Token: page.CursorAfter(i)},
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
			sent++
			if limit > 0 && sent >= limit {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}

// cursorErr names the request field of an engine's cursor error.
func cursorErr(err error) error {
	if errors.Is(err, engine.ErrInvalidCursor) {
		return fieldErr("optional_cursor.token", err)
	}
	return err
}

// WriteRelationships applies updates atomically.
func (p *permissions) WriteRelationships(ctx context.Context, req *pb.WriteRelationshipsRequest) (*pb.WriteRelationshipsResponse, error) {
	lim := p.eng().Limits()
	if err := tooMany("updates", "updates per write", len(req.GetUpdates()), lim.MaxUpdatesPerWrite); err != nil {
		return nil, err
	}
	if len(req.GetUpdates()) == 0 {
		return nil, missing("updates")
	}
	pres, err := preconditionsFromProto("optional_preconditions", req.GetOptionalPreconditions(), lim.MaxPreconditions)
	if err != nil {
		return nil, err
	}
	who := PrincipalOf(ctx)
	if err := who.PreconditionsErr("optional_preconditions", pres); err != nil {
		return nil, err
	}
	w := engine.WriteRequest{Caller: callerOf(ctx), Preconditions: pres, Updates: make([]engine.Update, len(req.GetUpdates()))}
	for i, u := range req.GetUpdates() {
		path := index("updates", i)
		if u == nil {
			return nil, missing(path)
		}
		op, err := opFromProto(join(path, "operation"), u.GetOperation())
		if err != nil {
			return nil, err
		}
		r, err := relationshipFromProto(join(path, "relationship"), u.GetRelationship())
		if err != nil {
			return nil, err
		}
		if err := who.RelationshipErr(join(path, "relationship"), r); err != nil {
			return nil, err
		}
		w.Updates[i] = engine.Update{Op: op, Relationship: r}
	}
	zk, err := p.eng().WriteRelationships(withAuditNote(ctx, req.GetOptionalReason()), w)
	if err != nil {
		return nil, err
	}
	return &pb.WriteRelationshipsResponse{WrittenAt: zookieToProto(zk)}, nil
}

func preconditionsFromProto(path string, ps []*pb.Precondition, limit int) ([]engine.Precondition, error) {
	if err := tooMany(path, "preconditions per write", len(ps), limit); err != nil {
		return nil, err
	}
	var out []engine.Precondition
	for i, pc := range ps {
		c, err := preconditionFromProto(index(path, i), pc)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// DeleteRelationships deletes by filter; a limited delete without
// optional_allow_partial_deletions is refused when more match (the engine
// decides, see engine.DeleteRequest).
func (p *permissions) DeleteRelationships(ctx context.Context, req *pb.DeleteRelationshipsRequest) (*pb.DeleteRelationshipsResponse, error) {
	f, err := filterFromProto("relationship_filter", req.GetRelationshipFilter(), true)
	if err != nil {
		return nil, err
	}
	pres, err := preconditionsFromProto("optional_preconditions", req.GetOptionalPreconditions(), p.eng().Limits().MaxPreconditions)
	if err != nil {
		return nil, err
	}
	who := PrincipalOf(ctx)
	if err := who.DeleteFilter("relationship_filter", f); err != nil {
		return nil, err
	}
	if err := who.PreconditionsErr("optional_preconditions", pres); err != nil {
		return nil, err
	}
	limit := int(req.GetOptionalLimit())
	if err := tooMany("optional_limit", "relationships", limit, MaxDeleteLimit); err != nil {
		return nil, err
	}
	res, err := p.eng().DeleteRelationships(withAuditNote(ctx, req.GetOptionalReason()), engine.DeleteRequest{
		Caller: callerOf(ctx), Filter: f, Limit: limit, AllowPartial: req.GetOptionalAllowPartialDeletions(), Preconditions: pres,
	})
	var dl *engine.DeleteLimitError
	if errors.As(err, &dl) {
		return nil, fmt.Errorf("%w: more than optional_limit (%d) relationships match the filter; set optional_allow_partial_deletions to delete that many", engine.ErrPreconditionFailed, limit)
	}
	if err != nil {
		return nil, err
	}
	progress := pb.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE
	if res.Partial {
		progress = pb.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL
	}
	return &pb.DeleteRelationshipsResponse{DeletedAt: zookieToProto(res.Zookie), DeletionProgress: progress, RelationshipsDeletedCount: uint64(res.Deleted)}, nil
}

// checkInput converts the part of a check shared by single and bulk checks.
func checkInput(path string, resource *pb.ObjectReference, permission string, subject *pb.SubjectReference) (engine.CheckQuery, error) {
	var out engine.CheckQuery
	var err error
	if out.Resource, err = objectFromProto(join(path, "resource"), resource); err != nil {
		return out, err
	}
	if err := checkRelation(join(path, "permission"), permission); err != nil {
		return out, err
	}
	out.Permission = permission
	if out.Subject, err = subjectFromProto(join(path, "subject"), subject); err != nil {
		return out, err
	}
	return out, nil
}

// CheckPermission answers one check.
func (p *permissions) CheckPermission(ctx context.Context, req *pb.CheckPermissionRequest) (*pb.CheckPermissionResponse, error) {
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	in, err := checkInput("", req.GetResource(), req.GetPermission(), req.GetSubject())
	if err != nil {
		return nil, err
	}
	if err := PrincipalOf(ctx).CheckErr("", in); err != nil {
		return nil, err
	}
	cctx, err := contextFromProto("context", req.GetContext())
	if err != nil {
		return nil, err
	}
	crels, err := p.contextualFromProto(ctx, "contextual_relationships", req.GetContextualRelationships())
	if err != nil {
		return nil, err
	}
	if req.GetExplain() {
		return p.explainPermission(ctx, engine.CheckRequest{Consistency: c, CheckRequest: in, Context: cctx, Contextual: crels})
	}
	res, err := p.eng().Check(ctx, engine.CheckRequest{Consistency: c, CheckRequest: in, Context: cctx, Contextual: crels})
	if err != nil {
		return nil, err
	}
	perm := permissionshipToProto(res.Permissionship)
	p.s.metrics.checked(perm, res.Dispatches, res.Depth)
	return &pb.CheckPermissionResponse{
		CheckedAt:         zookieToProto(res.Zookie),
		Permissionship:    perm,
		PartialCaveatInfo: partialInfo(res.Permissionship, res.MissingContext),
	}, nil
}

// CheckBulkPermissions answers every item at one revision (the engine
// groups the items by caveat context). An item that is malformed gets its
// own error and is not sent to the engine.
func (p *permissions) CheckBulkPermissions(ctx context.Context, req *pb.CheckBulkPermissionsRequest) (*pb.CheckBulkPermissionsResponse, error) {
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	items := req.GetItems()
	if err := tooMany("items", "items per bulk check", len(items), p.eng().Limits().MaxBulkCheckItems); err != nil {
		return nil, err
	}
	crels, err := p.contextualFromProto(ctx, "contextual_relationships", req.GetContextualRelationships())
	if err != nil {
		return nil, err
	}
	pairs := make([]*pb.CheckBulkPermissionsPair, len(items))
	const method = "/pemba.v1.PermissionsService/CheckBulkPermissions"
	bulk := engine.BulkCheckRequest{Consistency: c, Contextual: crels}
	var sent []int // the index in items of each item sent
	who := PrincipalOf(ctx)
	for i, it := range items {
		pairs[i] = &pb.CheckBulkPermissionsPair{Request: it}
		path := index("items", i)
		in, err := checkInput(path, it.GetResource(), it.GetPermission(), it.GetSubject())
		if err == nil {
			err = who.CheckErr(path, in)
		}
		var cctx map[string]any
		if err == nil {
			cctx, err = contextFromProto(join(path, "context"), it.GetContext())
		}
		if err != nil {
			pairs[i].Response = &pb.CheckBulkPermissionsPair_Error{Error: itemError(ctx, p.s.log, method, err)}
			continue
		}
		bulk.Items = append(bulk.Items, engine.BulkCheckItem{CheckRequest: in, Context: cctx})
		sent = append(sent, i)
	}
	res, err := p.eng().CheckBulk(ctx, bulk)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		// The deadline passed (or the caller went away) while items were
		// evaluated: the call fails as a whole, so that clients retry it
		// and metrics count it, instead of an OK whose items carry
		// DEADLINE_EXCEEDED.
		return nil, err
	}
	for j, r := range res.Results {
		i := sent[j]
		if r.Err != nil {
			pairs[i].Response = &pb.CheckBulkPermissionsPair_Error{Error: itemError(ctx, p.s.log, method, r.Err)}
			continue
		}
		perm := permissionshipToProto(r.Permissionship)
		p.s.metrics.checked(perm, r.Dispatches, r.Depth)
		pairs[i].Response = &pb.CheckBulkPermissionsPair_Item{Item: &pb.CheckBulkPermissionsResponseItem{
			Permissionship:    perm,
			PartialCaveatInfo: partialInfo(r.Permissionship, r.MissingContext),
		}}
	}
	return &pb.CheckBulkPermissionsResponse{CheckedAt: zookieToProto(res.Zookie), Pairs: pairs}, nil
}

// ExpandPermissionTree returns the expansion tree of a permission.
func (p *permissions) ExpandPermissionTree(ctx context.Context, req *pb.ExpandPermissionTreeRequest) (*pb.ExpandPermissionTreeResponse, error) {
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	res, err := objectFromProto("resource", req.GetResource())
	if err != nil {
		return nil, err
	}
	who := PrincipalOf(ctx)
	if err := who.TypeErr("resource.object_type", res.Type); err != nil {
		return nil, err
	}
	if err := checkRelation("permission", req.GetPermission()); err != nil {
		return nil, err
	}
	cctx, err := contextFromProto("context", req.GetContext())
	if err != nil {
		return nil, err
	}
	crels, err := p.contextualFromProto(ctx, "contextual_relationships", req.GetContextualRelationships())
	if err != nil {
		return nil, err
	}
	t, zk, err := p.eng().Expand(ctx, engine.ExpandRequest{
		Consistency:   c,
		ExpandRequest: engine.ExpandQuery{Resource: res, Permission: req.GetPermission(), Depth: int(req.GetOptionalDepth())},
		Context:       cctx,
		Contextual:    crels,
	})
	if err != nil {
		return nil, err
	}
	root, err := treeToProto(who.Tree(t))
	if err != nil {
		return nil, err
	}
	return &pb.ExpandPermissionTreeResponse{ExpandedAt: zookieToProto(zk), TreeRoot: root}, nil
}

func treeToProto(t *engine.Tree) (*pb.PermissionRelationshipTree, error) {
	if t == nil {
		return nil, nil
	}
	out := &pb.PermissionRelationshipTree{
		ExpandedObject:   convert.Object(t.Object),
		ExpandedRelation: t.Relation,
		Truncated:        t.Truncated,
	}
	if t.Caveat != nil || !t.Expiration.IsZero() {
		// The conditions of the relationship that led here.
		cv, exp, err := convert.Conditions(t.Caveat, t.Expiration)
		if err != nil {
			return nil, fmt.Errorf("%w (expansion node %s#%s)", err, t.Object, t.Relation)
		}
		out.OptionalCaveat, out.OptionalExpiresAt = cv, exp
	}
	children := make([]*pb.PermissionRelationshipTree, 0, len(t.Children))
	for _, ch := range t.Children {
		pc, err := treeToProto(ch)
		if err != nil {
			return nil, err
		}
		children = append(children, pc)
	}
	var op pb.AlgebraicSubjectSet_Operation
	switch t.Kind {
	case engine.Leaf:
		leaf := &pb.DirectSubjectSet{SubjectSetExpansions: children}
		for _, s := range t.Subjects {
			ps := convert.Subject(s.Subject)
			leaf.Subjects = append(leaf.Subjects, ps)
			if s.Caveat == nil && s.Expiration.IsZero() {
				continue
			}
			cv, exp, err := convert.Conditions(s.Caveat, s.Expiration)
			if err != nil {
				return nil, fmt.Errorf("%w (subject %s of %s#%s)", err, s.Subject, t.Object, t.Relation)
			}
			leaf.ConditionalSubjects = append(leaf.ConditionalSubjects, &pb.DirectSubject{
				Subject: ps, OptionalCaveat: cv, OptionalExpiresAt: exp,
			})
		}
		out.TreeType = &pb.PermissionRelationshipTree_Leaf{Leaf: leaf}
		return out, nil
	case engine.Union:
		op = pb.AlgebraicSubjectSet_OPERATION_UNION
	case engine.Intersection:
		op = pb.AlgebraicSubjectSet_OPERATION_INTERSECTION
	case engine.Exclusion:
		op = pb.AlgebraicSubjectSet_OPERATION_EXCLUSION
	default:
		return nil, fmt.Errorf("server: expansion node of unknown kind %v", t.Kind)
	}
	out.TreeType = &pb.PermissionRelationshipTree_Intermediate{Intermediate: &pb.AlgebraicSubjectSet{Operation: op, Children: children}}
	return out, nil
}

// LookupResources streams the resources a subject has a permission on.
// Every result carries a cursor that resumes after it at the same revision.
func (p *permissions) LookupResources(req *pb.LookupResourcesRequest, stream pb.PermissionsService_LookupResourcesServer) error {
	ctx := stream.Context()
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	if err := checkType("resource_object_type", req.GetResourceObjectType()); err != nil {
		return err
	}
	if err := checkRelation("permission", req.GetPermission()); err != nil {
		return err
	}
	subj, err := subjectFromProto("subject", req.GetSubject())
	if err != nil {
		return err
	}
	who := PrincipalOf(ctx)
	if err := who.LookupErr("resource_object_type", req.GetResourceObjectType(), "subject.object.object_type", subj.Type, "optional_limit", int(req.GetOptionalLimit())); err != nil {
		return err
	}
	cctx, err := contextFromProto("context", req.GetContext())
	if err != nil {
		return err
	}
	th, err := throughFromProto("optional_through", req.GetOptionalThrough())
	if err != nil {
		return err
	}
	crels, err := p.contextualFromProto(ctx, "contextual_relationships", req.GetContextualRelationships())
	if err != nil {
		return err
	}
	seq, zk, err := p.eng().LookupResources(ctx, engine.LookupResourcesRequest{
		Consistency: c,
		LookupResourcesRequest: engine.LookupResourcesQuery{
			ResourceType: req.GetResourceObjectType(), Permission: req.GetPermission(), Subject: subj,
			Limit: int(req.GetOptionalLimit()), Through: th,
		},
		Context:    cctx,
		Contextual: crels,
		Cursor:     req.GetOptionalCursor().GetToken(),
	})
	if err != nil {
		return cursorErr(err)
	}
	pz := zookieToProto(zk)
	for r, err := range seq {
		if err != nil {
			return err
		}
		err := stream.Send(&pb.LookupResourcesResponse{
			LookedUpAt:        pz,
			ResourceObjectId:  r.ResourceID,
			Permissionship:    permissionshipToProto(r.Permissionship),
			PartialCaveatInfo: partialInfo(r.Permissionship, r.MissingContext),
			AfterResultCursor: &pb.Cursor{Token: r.Cursor()},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// LookupSubjects streams the subjects that have a permission on a resource.
func (p *permissions) LookupSubjects(req *pb.LookupSubjectsRequest, stream pb.PermissionsService_LookupSubjectsServer) error {
	ctx := stream.Context()
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	res, err := objectFromProto("resource", req.GetResource())
	if err != nil {
		return err
	}
	if err := checkRelation("permission", req.GetPermission()); err != nil {
		return err
	}
	if err := checkType("subject_object_type", req.GetSubjectObjectType()); err != nil {
		return err
	}
	subRel := req.GetOptionalSubjectRelation()
	if subRel == tuple.Ellipsis {
		subRel = ""
	}
	if subRel != "" {
		if err := checkRelation("optional_subject_relation", subRel); err != nil {
			return err
		}
	}
	if err := PrincipalOf(ctx).LookupErr("resource.object_type", res.Type, "subject_object_type", req.GetSubjectObjectType(), "optional_limit", int(req.GetOptionalLimit())); err != nil {
		return err
	}
	cctx, err := contextFromProto("context", req.GetContext())
	if err != nil {
		return err
	}
	within, err := withinFromProto("optional_within", req.GetOptionalWithin())
	if err != nil {
		return err
	}
	crels, err := p.contextualFromProto(ctx, "contextual_relationships", req.GetContextualRelationships())
	if err != nil {
		return err
	}
	seq, zk, err := p.eng().LookupSubjects(ctx, engine.LookupSubjectsRequest{
		Consistency: c,
		LookupSubjectsRequest: engine.LookupSubjectsQuery{
			Resource: res, Permission: req.GetPermission(), SubjectType: req.GetSubjectObjectType(), SubjectRelation: subRel,
			Limit: int(req.GetOptionalLimit()), Within: within,
		},
		Context:    cctx,
		Contextual: crels,
		Cursor:     req.GetOptionalCursor().GetToken(),
	})
	if err != nil {
		return cursorErr(err)
	}
	pz := zookieToProto(zk)
	for r, err := range seq {
		if err != nil {
			return err
		}
		msg := &pb.LookupSubjectsResponse{
			LookedUpAt:        pz,
			AfterResultCursor: &pb.Cursor{Token: r.Cursor()},
			Subject: &pb.ResolvedSubject{
				SubjectObjectId:   r.SubjectID,
				Permissionship:    permissionshipToProto(r.Permissionship),
				PartialCaveatInfo: partialInfo(r.Permissionship, r.MissingContext),
			},
		}
		for _, id := range r.ExcludedIDs {
			msg.ExcludedSubjects = append(msg.ExcludedSubjects, &pb.ResolvedSubject{
				SubjectObjectId: id, Permissionship: pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION,
			})
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// ImportRelationships feeds the client stream to the engine's import as
// one sequence, converting message by message. The first message is read
// before the import starts: its optional_reason is the import's, for the
// audit log.
func (p *permissions) ImportRelationships(stream pb.PermissionsService_ImportRelationshipsServer) error {
	ctx := stream.Context()
	who := PrincipalOf(ctx)
	first, firstErr := stream.Recv()
	reason := first.GetOptionalReason()
	seq := func(yield func(tuple.Relationship, error) bool) {
		for m := 0; ; m++ {
			msg, err := first, firstErr
			if m > 0 {
				msg, err = stream.Recv()
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			if r := msg.GetOptionalReason(); r != "" && r != reason {
				yield(tuple.Relationship{}, fieldf("messages["+strconv.Itoa(m)+"].optional_reason",
					"%w: differs from the first message's reason", engine.ErrInvalidRequest))
				return
			}
			path := "messages[" + strconv.Itoa(m) + "].relationships"
			if err := tooMany(path, "relationships in one message", len(msg.GetRelationships()), MaxImportBatch); err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			for i, r := range msg.GetRelationships() {
				t, err := relationshipFromProto(index(path, i), r)
				if err == nil {
					err = who.RelationshipErr(index(path, i), t)
				}
				if !yield(t, err) || err != nil {
					return
				}
			}
		}
	}
	zk, n, err := p.eng().Import(withAuditNote(ctx, reason), callerOf(ctx), iter.Seq2[tuple.Relationship, error](seq))
	if err != nil {
		if n > 0 {
			return fmt.Errorf("%w (%d relationships were imported before the error, through zookie %s)", err, n, zk)
		}
		return err
	}
	return stream.SendAndClose(&pb.ImportRelationshipsResponse{NumLoaded: uint64(n), WrittenAt: zookieToProto(zk)})
}

// ExportRelationships streams batches of relationships at one revision.
func (p *permissions) ExportRelationships(req *pb.ExportRelationshipsRequest, stream pb.PermissionsService_ExportRelationshipsServer) error {
	ctx := stream.Context()
	c, err := consistencyFromProto("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	f, err := filterFromProto("optional_relationship_filter", req.GetOptionalRelationshipFilter(), false)
	if err != nil {
		return err
	}
	who := PrincipalOf(ctx)
	if err := who.FilterErr("optional_relationship_filter", f); err != nil {
		return err
	}
	maxBatch := min(MaxExportBatch, p.eng().Limits().MaxReadPageSize)
	batch := int(req.GetOptionalBatchSize())
	if err := tooMany("optional_batch_size", "relationships", batch, maxBatch); err != nil {
		return err
	}
	if batch == 0 {
		batch = maxBatch
	}
	cursor := req.GetOptionalCursor().GetToken()
	for first := true; ; first = false {
		page, err := p.eng().ReadRelationships(ctx, c, f, batch, cursor)
		if err != nil {
			return cursorErr(err)
		}
		msg := &pb.ExportRelationshipsResponse{ExportedAt: zookieToProto(page.Zookie), AfterBatchCursor: cursorToProto(page.Next)}
		for _, r := range page.Relationships {
			if !who.Sees(r) {
				continue
			}
			pr, err := convert.Relationship(r)
			if err != nil {
				return err
			}
			msg.Relationships = append(msg.Relationships, pr)
		}
		// An empty export still sends one message, to carry exported_at.
		if len(msg.Relationships) > 0 || first {
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}
