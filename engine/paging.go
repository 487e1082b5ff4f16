package engine

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/token"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Paging. Every streamed call (ReadRelationships, and through it the API's
// export; LookupResources; LookupSubjects) pages the same way: the first
// page reads at the revision its Consistency selects, and every result can
// mint a cursor (a token.Cursor) that holds that revision, a hash of the
// request's defining fields and the position of the result. A call given a
// cursor reads at the cursor's revision, ignoring its Consistency, so the
// pages of one listing form one snapshot, and resumes strictly after the
// position. Positions are keys, not counts, so that relationships
// expiring between two pages cannot shift them.

// pager mints the cursors of one page.
type pager struct {
	fp      token.Fingerprint
	rev     store.Revision
	request uint64
}

// cursor returns the cursor that resumes after position pos.
func (p *pager) cursor(pos string) string {
	return token.EncodeCursor(p.fp, token.Cursor{Revision: uint64(p.rev), Request: p.request, Position: pos})
}

// openPage opens the view a paged call reads and returns the position to
// resume after ("" for a first page) and the page's pager. request is the
// RequestHash of the call's defining fields.
func (e *Engine) openPage(ctx context.Context, c Consistency, cursor string, request uint64) (*view, string, *pager, error) {
	var (
		v   *view
		pos string
		err error
	)
	if cursor == "" {
		v, err = e.open(ctx, c)
	} else {
		if err := e.checkOpen(); err != nil {
			return nil, "", nil, err
		}
		tc, derr := token.DecodeCursor(e.fingerprint, cursor, request)
		if derr != nil {
			// %v, not %w: the token's sentinels also describe zookies,
			// and the caller must see a cursor error.
			return nil, "", nil, fmt.Errorf("%w: %s", ErrInvalidCursor, tokenReason(derr))
		}
		if tc.Position == "" {
			return nil, "", nil, fmt.Errorf("%w: no position", ErrInvalidCursor)
		}
		pos = tc.Position
		v, err = e.openAt(ctx, store.Revision(tc.Revision))
	}
	if err != nil {
		return nil, "", nil, err
	}
	return v, pos, &pager{fp: e.fingerprint, rev: v.rev, request: request}, nil
}

// needSchemaPage is openPage for calls that cannot work without a schema.
func (e *Engine) needSchemaPage(ctx context.Context, c Consistency, cursor string, request uint64) (*view, string, *pager, error) {
	v, pos, p, err := e.openPage(ctx, c, cursor, request)
	if err == nil && v.c == nil {
		err = fmt.Errorf("%w (at revision %d)", ErrNoSchema, v.rev)
	}
	return v, pos, p, err
}

// readRequest, lookupResourcesRequest and lookupSubjectsRequest hash the
// fields that define a listing: a cursor resumes only the listing it came
// from. The caveat context is not among them: it changes the
// permissionship of results, not their order.
func readRequest(f tuple.Filter) uint64 {
	return token.RequestHash("read-relationships", formatFilter(f))
}

func lookupResourcesRequest(req LookupResourcesRequest) uint64 {
	parts := []string{"lookup-resources", req.ResourceType, req.Permission, req.Subject.String()}
	if req.Through != nil {
		parts = append(parts, "through", req.Through.String())
	}
	return token.RequestHash(parts...)
}

func lookupSubjectsRequest(req LookupSubjectsRequest) uint64 {
	parts := []string{"lookup-subjects", req.Resource.String(), req.Permission, req.SubjectType, req.SubjectRelation}
	if req.Within != nil {
		parts = append(parts, "within", req.Within.String())
	}
	return token.RequestHash(parts...)
}
