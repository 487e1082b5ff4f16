package authzed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// permissions implements v1.PermissionsServiceServer.
type permissions struct {
	v1.UnimplementedPermissionsServiceServer
	*api
}

// cursorErr names the request field of an engine's cursor error.
func cursorErr(err error) error {
	if errors.Is(err, engine.ErrInvalidCursor) {
		return fieldErr("optional_cursor.token", err)
	}
	return err
}

// ReadRelationships streams the matches of a filter, page by page, all at
// the revision of the first page; each carries the cursor after it.
func (p *permissions) ReadRelationships(req *v1.ReadRelationshipsRequest, stream grpc.ServerStreamingServer[v1.ReadRelationshipsResponse]) error {
	ctx := stream.Context()
	c, err := consistency("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	f, err := filter("relationship_filter", req.GetRelationshipFilter(), false)
	if err != nil {
		return err
	}
	who := server.PrincipalOf(ctx)
	if err := who.FilterErr("relationship_filter", f); err != nil {
		return err
	}
	cursor := req.GetOptionalCursor().GetToken()
	limit := int(req.GetOptionalLimit())
	pageMax := p.eng.Limits().MaxReadPageSize
	sent := 0
	for {
		size := pageMax
		if limit > 0 {
			size = min(pageMax, limit-sent)
		}
		page, err := p.eng.ReadRelationships(ctx, c, f, size, cursor)
		if err != nil {
			return cursorErr(err)
		}
		zt := toZedToken(page.Zookie)
		for i, r := range page.Relationships {
			if !who.Sees(r) {
				continue
			}
			pr, err := toRelationship(r)
			if err != nil {
				return err
			}
			msg := &v1.ReadRelationshipsResponse{ReadAt: zt, Relationship: pr, AfterResultCursor: &v1.Cursor{Token: page.CursorAfter(i)}}
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

// WriteRelationships applies updates atomically, if the preconditions
// hold.
func (p *permissions) WriteRelationships(ctx context.Context, req *v1.WriteRelationshipsRequest) (*v1.WriteRelationshipsResponse, error) {
	if req.GetOptionalTransactionMetadata() != nil {
		return nil, unimplemented("optional_transaction_metadata", "Pemba records the calling key's name with each write, not metadata")
	}
	lim := p.eng.Limits()
	if err := tooMany("updates", "updates per write", len(req.GetUpdates()), lim.MaxUpdatesPerWrite); err != nil {
		return nil, err
	}
	pres, err := preconditions("optional_preconditions", req.GetOptionalPreconditions(), lim.MaxPreconditions)
	if err != nil {
		return nil, err
	}
	if len(req.GetUpdates()) == 0 {
		return nil, missing("updates")
	}
	who := server.PrincipalOf(ctx)
	if err := who.PreconditionsErr("optional_preconditions", pres); err != nil {
		return nil, err
	}
	w := engine.WriteRequest{Caller: server.CallerOf(ctx), Preconditions: pres, Updates: make([]engine.Update, len(req.GetUpdates()))}
	for i, u := range req.GetUpdates() {
		path := index("updates", i)
		if u == nil {
			return nil, missing(path)
		}
		op, err := operation(join(path, "operation"), u.GetOperation())
		if err != nil {
			return nil, err
		}
		r, err := relationship(join(path, "relationship"), u.GetRelationship())
		if err != nil {
			return nil, err
		}
		if err := who.RelationshipErr(join(path, "relationship"), r); err != nil {
			return nil, err
		}
		w.Updates[i] = engine.Update{Op: op, Relationship: r}
	}
	zk, err := p.eng.WriteRelationships(server.WithAuditNote(ctx, ""), w)
	if err != nil {
		return nil, err
	}
	return &v1.WriteRelationshipsResponse{WrittenAt: toZedToken(zk)}, nil
}

// DeleteRelationships deletes what a filter matches. With optional_limit
// and without optional_allow_partial_deletions, more matches than the
// limit fail the call with FAILED_PRECONDITION and delete nothing, as in
// SpiceDB (the engine's DeleteRequest.AllowPartial).
func (p *permissions) DeleteRelationships(ctx context.Context, req *v1.DeleteRelationshipsRequest) (*v1.DeleteRelationshipsResponse, error) {
	if req.GetOptionalTransactionMetadata() != nil {
		return nil, unimplemented("optional_transaction_metadata", "Pemba records the calling key's name with each write, not metadata")
	}
	if req.GetOptionalCursor() != nil {
		return nil, unimplemented("optional_cursor", "repeat the call with optional_allow_partial_deletions until deletion_progress is COMPLETE")
	}
	f, err := filter("relationship_filter", req.GetRelationshipFilter(), true)
	if err != nil {
		return nil, err
	}
	pres, err := preconditions("optional_preconditions", req.GetOptionalPreconditions(), p.eng.Limits().MaxPreconditions)
	if err != nil {
		return nil, err
	}
	who := server.PrincipalOf(ctx)
	if err := who.DeleteFilter("relationship_filter", f); err != nil {
		return nil, err
	}
	if err := who.PreconditionsErr("optional_preconditions", pres); err != nil {
		return nil, err
	}
	limit := int(req.GetOptionalLimit())
	if err := tooMany("optional_limit", "relationships", limit, server.MaxDeleteLimit); err != nil {
		return nil, err
	}
	if req.GetOptionalAllowPartialDeletions() && limit == 0 {
		return nil, fieldf("optional_allow_partial_deletions", "needs optional_limit")
	}
	resp, err := p.eng.DeleteRelationships(server.WithAuditNote(ctx, ""), engine.DeleteRequest{
		Caller: server.CallerOf(ctx), Filter: f, Limit: limit, AllowPartial: req.GetOptionalAllowPartialDeletions(), Preconditions: pres,
	})
	var dle *engine.DeleteLimitError
	if errors.As(err, &dle) {
		return nil, fmt.Errorf("optional_limit: %w", err)
	}
	if err != nil {
		return nil, err
	}
	progress := v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE
	if resp.Partial {
		progress = v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL
	}
	return &v1.DeleteRelationshipsResponse{DeletedAt: toZedToken(resp.Zookie), DeletionProgress: progress, RelationshipsDeletedCount: uint64(resp.Deleted)}, nil
}

// checkInput converts the part of a check shared by single and bulk checks.
func checkInput(path string, resource *v1.ObjectReference, permission string, subj *v1.SubjectReference) (engine.CheckQuery, error) {
	var out engine.CheckQuery
	var err error
	if out.Resource, err = object(join(path, "resource"), resource); err != nil {
		return out, err
	}
	if err := checkRelation(path, "permission", permission); err != nil {
		return out, err
	}
	out.Permission = permission
	if out.Subject, err = subject(join(path, "subject"), subj); err != nil {
		return out, err
	}
	return out, nil
}

const withTracingWhy = "Pemba returns no debug trace; use ExpandPermissionTree (zed permission expand) to see why"

// CheckPermission answers one check.
func (p *permissions) CheckPermission(ctx context.Context, req *v1.CheckPermissionRequest) (*v1.CheckPermissionResponse, error) {
	if req.GetWithTracing() {
		return nil, unimplemented("with_tracing", withTracingWhy)
	}
	c, err := consistency("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	in, err := checkInput("", req.GetResource(), req.GetPermission(), req.GetSubject())
	if err != nil {
		return nil, err
	}
	if err := server.PrincipalOf(ctx).CheckErr("", in); err != nil {
		return nil, err
	}
	cctx, err := caveatContext("context", req.GetContext())
	if err != nil {
		return nil, err
	}
	res, err := p.eng.Check(ctx, engine.CheckRequest{Consistency: c, CheckRequest: in, Context: cctx})
	if err != nil {
		return nil, err
	}
	p.srv.ObserveCheck(res.CheckResult)
	return &v1.CheckPermissionResponse{
		CheckedAt:         toZedToken(res.Zookie),
		Permissionship:    toCheckPermissionship(res.Permissionship),
		PartialCaveatInfo: partialInfo(res.Permissionship, res.MissingContext),
	}, nil
}

const bulkMethod = "/authzed.api.v1.PermissionsService/CheckBulkPermissions"

// CheckBulkPermissions answers every item at one revision (the engine
// groups items by caveat context). A malformed item gets its own error,
// as in SpiceDB.
func (p *permissions) CheckBulkPermissions(ctx context.Context, req *v1.CheckBulkPermissionsRequest) (*v1.CheckBulkPermissionsResponse, error) {
	if req.GetWithTracing() {
		return nil, unimplemented("with_tracing", withTracingWhy)
	}
	c, err := consistency("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	items := req.GetItems()
	if err := tooMany("items", "items per bulk check", len(items), p.eng.Limits().MaxBulkCheckItems); err != nil {
		return nil, err
	}
	pairs := make([]*v1.CheckBulkPermissionsPair, len(items))
	var valid []engine.BulkCheckItem
	var indexes []int // of valid's items in the request
	who := server.PrincipalOf(ctx)
	for i, it := range items {
		pairs[i] = &v1.CheckBulkPermissionsPair{Request: it}
		path := index("items", i)
		in, err := checkInput(path, it.GetResource(), it.GetPermission(), it.GetSubject())
		if err == nil {
			err = who.CheckErr(path, in)
		}
		var cctx map[string]any
		if err == nil {
			cctx, err = caveatContext(join(path, "context"), it.GetContext())
		}
		if err != nil {
			pairs[i].Response = &v1.CheckBulkPermissionsPair_Error{Error: p.spicedbStatus(bulkMethod, err).Proto()}
			continue
		}
		valid = append(valid, engine.BulkCheckItem{CheckRequest: in, Context: cctx})
		indexes = append(indexes, i)
	}
	// With no valid item the revision is still resolved: the consistency
	// is validated and the answer carries a ZedToken.
	resp, err := p.eng.CheckBulk(ctx, engine.BulkCheckRequest{Consistency: c, Items: valid})
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
	for j, r := range resp.Results {
		i := indexes[j]
		if r.Err != nil {
			pairs[i].Response = &v1.CheckBulkPermissionsPair_Error{Error: p.spicedbStatus(bulkMethod, r.Err).Proto()}
			continue
		}
		p.srv.ObserveCheck(r.CheckResult)
		pairs[i].Response = &v1.CheckBulkPermissionsPair_Item{Item: &v1.CheckBulkPermissionsResponseItem{
			Permissionship:    toCheckPermissionship(r.Permissionship),
			PartialCaveatInfo: partialInfo(r.Permissionship, r.MissingContext),
		}}
	}
	return &v1.CheckBulkPermissionsResponse{CheckedAt: toZedToken(resp.Zookie), Pairs: pairs}, nil
}

// ExpandPermissionTree returns the expansion tree of a permission.
func (p *permissions) ExpandPermissionTree(ctx context.Context, req *v1.ExpandPermissionTreeRequest) (*v1.ExpandPermissionTreeResponse, error) {
	c, err := consistency("consistency", req.GetConsistency())
	if err != nil {
		return nil, err
	}
	res, err := object("resource", req.GetResource())
	if err != nil {
		return nil, err
	}
	who := server.PrincipalOf(ctx)
	if err := who.TypeErr("resource.object_type", res.Type); err != nil {
		return nil, err
	}
	if err := checkRelation("", "permission", req.GetPermission()); err != nil {
		return nil, err
	}
	t, zk, err := p.eng.Expand(ctx, engine.ExpandRequest{Consistency: c, ExpandRequest: engine.ExpandQuery{Resource: res, Permission: req.GetPermission()}})
	if err != nil {
		return nil, err
	}
	root, err := toTree(who.Tree(t))
	if err != nil {
		return nil, err
	}
	return &v1.ExpandPermissionTreeResponse{ExpandedAt: toZedToken(zk), TreeRoot: root}, nil
}

// toTree converts an expansion. authzed.api.v1's leaf has no children
// and no conditions: a Pemba leaf whose subject sets were expanded
// becomes the union of the leaf and those expansions, and the caveats and
// expirations of subjects are not carried (docs/compat.md).
func toTree(t *engine.Tree) (*v1.PermissionRelationshipTree, error) {
	if t == nil {
		return nil, nil
	}
	out := &v1.PermissionRelationshipTree{ExpandedObject: toObject(t.Object), ExpandedRelation: t.Relation}
	children := make([]*v1.PermissionRelationshipTree, 0, len(t.Children))
	for _, ch := range t.Children {
		pc, err := toTree(ch)
		if err != nil {
			return nil, err
		}
		children = append(children, pc)
	}
	var op v1.AlgebraicSubjectSet_Operation
	switch t.Kind {
	case engine.Leaf:
		leaf := &v1.DirectSubjectSet{}
		for _, s := range t.Subjects {
			leaf.Subjects = append(leaf.Subjects, toSubject(s.Subject))
		}
		if len(children) == 0 {
			out.TreeType = &v1.PermissionRelationshipTree_Leaf{Leaf: leaf}
			return out, nil
		}
		direct := &v1.PermissionRelationshipTree{
			ExpandedObject: out.ExpandedObject, ExpandedRelation: t.Relation,
			TreeType: &v1.PermissionRelationshipTree_Leaf{Leaf: leaf},
		}
		children = append([]*v1.PermissionRelationshipTree{direct}, children...)
		op = v1.AlgebraicSubjectSet_OPERATION_UNION
	case engine.Union:
		op = v1.AlgebraicSubjectSet_OPERATION_UNION
	case engine.Intersection:
		op = v1.AlgebraicSubjectSet_OPERATION_INTERSECTION
	case engine.Exclusion:
		op = v1.AlgebraicSubjectSet_OPERATION_EXCLUSION
	default:
		return nil, fmt.Errorf("authzed: expansion node of unknown kind %v", t.Kind)
	}
	out.TreeType = &v1.PermissionRelationshipTree_Intermediate{Intermediate: &v1.AlgebraicSubjectSet{Operation: op, Children: children}}
	return out, nil
}

// LookupResources streams the resources a subject has a permission on;
// each carries the cursor that resumes after it at the same revision.
func (p *permissions) LookupResources(req *v1.LookupResourcesRequest, stream grpc.ServerStreamingServer[v1.LookupResourcesResponse]) error {
	if req.GetWithDebug() {
		return unimplemented("with_debug", "Pemba returns no debug trace")
	}
	ctx := stream.Context()
	c, err := consistency("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	if err := checkType("", "resource_object_type", req.GetResourceObjectType()); err != nil {
		return err
	}
	if err := checkRelation("", "permission", req.GetPermission()); err != nil {
		return err
	}
	subj, err := subject("subject", req.GetSubject())
	if err != nil {
		return err
	}
	if err := server.PrincipalOf(ctx).LookupErr("resource_object_type", req.GetResourceObjectType(), "subject.object.object_type", subj.Type, "optional_limit", int(req.GetOptionalLimit())); err != nil {
		return err
	}
	cctx, err := caveatContext("context", req.GetContext())
	if err != nil {
		return err
	}
	seq, zk, err := p.eng.LookupResources(ctx, engine.LookupResourcesRequest{
		Consistency: c,
		LookupResourcesRequest: engine.LookupResourcesQuery{
			ResourceType: req.GetResourceObjectType(), Permission: req.GetPermission(), Subject: subj,
			Limit: int(req.GetOptionalLimit()),
		},
		Context: cctx,
		Cursor:  req.GetOptionalCursor().GetToken(),
	})
	if err != nil {
		return cursorErr(err)
	}
	zt := toZedToken(zk)
	for r, err := range seq {
		if err != nil {
			return err
		}
		err := stream.Send(&v1.LookupResourcesResponse{
			LookedUpAt:        zt,
			ResourceObjectId:  r.ResourceID,
			Permissionship:    toLookupPermissionship(r.Permissionship),
			PartialCaveatInfo: partialInfo(r.Permissionship, r.MissingContext),
			AfterResultCursor: &v1.Cursor{Token: r.Cursor()},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// LookupSubjects streams the subjects that have a permission on a
// resource. optional_concrete_limit pages them (the wildcard, when
// included, counts as one result), resumed with optional_cursor.
func (p *permissions) LookupSubjects(req *v1.LookupSubjectsRequest, stream grpc.ServerStreamingServer[v1.LookupSubjectsResponse]) error {
	ctx := stream.Context()
	c, err := consistency("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	res, err := object("resource", req.GetResource())
	if err != nil {
		return err
	}
	if err := checkRelation("", "permission", req.GetPermission()); err != nil {
		return err
	}
	if err := checkType("", "subject_object_type", req.GetSubjectObjectType()); err != nil {
		return err
	}
	subRel := req.GetOptionalSubjectRelation()
	if subRel == tuple.Ellipsis {
		subRel = ""
	}
	if subRel != "" {
		if err := checkRelation("", "optional_subject_relation", subRel); err != nil {
			return err
		}
	}
	var wildcards bool
	switch w := req.GetWildcardOption(); w {
	case v1.LookupSubjectsRequest_WILDCARD_OPTION_UNSPECIFIED, v1.LookupSubjectsRequest_WILDCARD_OPTION_INCLUDE_WILDCARDS:
		wildcards = true
	case v1.LookupSubjectsRequest_WILDCARD_OPTION_EXCLUDE_WILDCARDS:
	default:
		return fieldf("wildcard_option", "unknown option %d", int32(w))
	}
	if err := server.PrincipalOf(ctx).LookupErr("resource.object_type", res.Type, "subject_object_type", req.GetSubjectObjectType(), "optional_concrete_limit", int(req.GetOptionalConcreteLimit())); err != nil {
		return err
	}
	cctx, err := caveatContext("context", req.GetContext())
	if err != nil {
		return err
	}
	// Without wildcards the limit counts here: the engine would count a
	// wildcard that is then dropped, and a short page reads as the last.
	limit := int(req.GetOptionalConcreteLimit())
	engineLimit := limit
	if !wildcards {
		engineLimit = 0
	}
	seq, zk, err := p.eng.LookupSubjects(ctx, engine.LookupSubjectsRequest{
		Consistency: c,
		LookupSubjectsRequest: engine.LookupSubjectsQuery{
			Resource: res, Permission: req.GetPermission(), SubjectType: req.GetSubjectObjectType(), SubjectRelation: subRel,
			Limit: engineLimit,
		},
		Context: cctx,
		Cursor:  req.GetOptionalCursor().GetToken(),
	})
	if err != nil {
		return cursorErr(err)
	}
	zt := toZedToken(zk)
	sent := 0
	for r, err := range seq {
		if err != nil {
			return err
		}
		if !wildcards && r.SubjectID == tuple.Wildcard {
			continue
		}
		if limit > 0 && sent == limit {
			return nil
		}
		sent++
		perm := toLookupPermissionship(r.Permissionship)
		info := partialInfo(r.Permissionship, r.MissingContext)
		msg := &v1.LookupSubjectsResponse{
			LookedUpAt:        zt,
			AfterResultCursor: &v1.Cursor{Token: r.Cursor()},
			Subject:           &v1.ResolvedSubject{SubjectObjectId: r.SubjectID, Permissionship: perm, PartialCaveatInfo: info},
		}
		fillDeprecated(msg, r.ExcludedIDs)
		for _, id := range r.ExcludedIDs {
			msg.ExcludedSubjects = append(msg.ExcludedSubjects, &v1.ResolvedSubject{
				SubjectObjectId: id, Permissionship: v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION,
			})
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// ImportBulkRelationships feeds the client stream to the engine's import
// as one sequence, converting message by message.
func (p *permissions) ImportBulkRelationships(stream grpc.ClientStreamingServer[v1.ImportBulkRelationshipsRequest, v1.ImportBulkRelationshipsResponse]) error {
	ctx := stream.Context()
	who := server.PrincipalOf(ctx)
	seq := func(yield func(tuple.Relationship, error) bool) {
		for m := 0; ; m++ {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			path := index("messages", m) + ".relationships"
			if err := tooMany(path, "relationships in one message", len(msg.GetRelationships()), server.MaxImportBatch); err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			for i, r := range msg.GetRelationships() {
				t, err := relationship(index(path, i), r)
				if err == nil {
					err = who.RelationshipErr(index(path, i), t)
				}
				if !yield(t, err) || err != nil {
					return
				}
			}
		}
	}
	zk, n, err := p.eng.Import(server.WithAuditNote(ctx, ""), server.CallerOf(ctx), iter.Seq2[tuple.Relationship, error](seq))
	if err != nil {
		if n > 0 {
			return fmt.Errorf("%w (%d relationships were imported before the error, through ZedToken %s)", err, n, zk)
		}
		return err
	}
	return stream.SendAndClose(&v1.ImportBulkRelationshipsResponse{NumLoaded: uint64(n)})
}

// ExportBulkRelationships streams batches of relationships at one
// revision; each batch carries the cursor after it.
func (p *permissions) ExportBulkRelationships(req *v1.ExportBulkRelationshipsRequest, stream grpc.ServerStreamingServer[v1.ExportBulkRelationshipsResponse]) error {
	ctx := stream.Context()
	c, err := consistency("consistency", req.GetConsistency())
	if err != nil {
		return err
	}
	f, err := filter("optional_relationship_filter", req.GetOptionalRelationshipFilter(), false)
	if err != nil {
		return err
	}
	who := server.PrincipalOf(ctx)
	if err := who.FilterErr("optional_relationship_filter", f); err != nil {
		return err
	}
	maxBatch := min(server.MaxExportBatch, p.eng.Limits().MaxReadPageSize)
	batch := int(req.GetOptionalLimit())
	if err := tooMany("optional_limit", "relationships per batch", batch, maxBatch); err != nil {
		return err
	}
	if batch == 0 {
		batch = maxBatch
	}
	cursor := req.GetOptionalCursor().GetToken()
	for {
		page, err := p.eng.ReadRelationships(ctx, c, f, batch, cursor)
		if err != nil {
			return cursorErr(err)
		}
		if len(page.Relationships) > 0 {
			msg := &v1.ExportBulkRelationshipsResponse{AfterResultCursor: toCursor(page.CursorAfter(len(page.Relationships) - 1))}
			for _, r := range page.Relationships {
				if !who.Sees(r) {
					continue
				}
				pr, err := toRelationship(r)
				if err != nil {
					return err
				}
				msg.Relationships = append(msg.Relationships, pr)
			}
			if len(msg.Relationships) > 0 {
				if err := stream.Send(msg); err != nil {
					return err
				}
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}
