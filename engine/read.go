package engine

import (
	"context"
	"fmt"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// ReadSchemaResponse is the schema in force at a revision.
type ReadSchemaResponse struct {
	// Text is the schema as written.
	Text string
	// Zookie names the revision it was read at.
	Zookie string
}

// ReadSchema returns the schema text in force at the revision c selects,
// and that revision's zookie. It fails with ErrNoSchema before the first
// schema write.
func (e *Engine) ReadSchema(ctx context.Context, c Consistency) (ReadSchemaResponse, error) {
	v, err := e.needSchema(ctx, c)
	if err != nil {
		return ReadSchemaResponse{}, err
	}
	return ReadSchemaResponse{Text: v.c.schema.Source, Zookie: e.zookieOf(v.rev)}, nil
}

// ReadPage is one page of ReadRelationships.
type ReadPage struct {
	// Relationships are the matches of the page, in index order.
	Relationships []tuple.Relationship
	// Next resumes the scan after the page; "" after the last page.
	Next string
	// Zookie names the revision of the scan.
	Zookie string

	pager *pager
}

// CursorAfter returns a cursor that resumes the scan after
// Relationships[i], at the scan's revision.
func (p ReadPage) CursorAfter(i int) string {
	return p.pager.cursor(p.Relationships[i].Key().String())
}

// ReadRelationships returns one page of the relationships matching f, in
// index order, hiding expired ones. An empty cursor starts a scan at the
// revision c selects; a non-empty cursor (from a previous page of the same
// filter: its Next or a CursorAfter) continues that scan at the revision it
// started at, and c is then ignored, so the pages of one scan form one
// consistent snapshot. A page size of 0 means Limits.MaxReadPageSize.
func (e *Engine) ReadRelationships(ctx context.Context, c Consistency, f tuple.Filter, pageSize int, cursor string) (ReadPage, error) {
	if err := validateFilter(f); err != nil {
		return ReadPage{}, err
	}
	switch {
	case pageSize < 0:
		return ReadPage{}, fmt.Errorf("%w: negative page size %d", ErrInvalidRequest, pageSize)
	case pageSize == 0:
		pageSize = e.limits.MaxReadPageSize
	case pageSize > e.limits.MaxReadPageSize:
		return ReadPage{}, &LimitError{Limit: "relationships per page", Max: e.limits.MaxReadPageSize, Got: pageSize}
	}
	v, pos, pg, err := e.openPage(ctx, c, cursor, readRequest(f))
	if err != nil {
		return ReadPage{}, err
	}
	var after *tuple.Key
	if pos != "" {
		r, err := tuple.Parse(pos)
		if err != nil || r.Caveat != nil || !r.Expiration.IsZero() {
			return ReadPage{}, fmt.Errorf("%w: bad position", ErrInvalidCursor)
		}
		k := r.Key()
		after = &k
	}
	// Ask for one more than a page to know whether another page follows.
	opts := store.QueryOptions{Limit: pageSize + 1, After: after, Now: e.now()}
	page := ReadPage{Relationships: make([]tuple.Relationship, 0, min(pageSize, 64)), Zookie: e.zookieOf(v.rev), pager: pg}
	more := false
	for r, err := range v.reader.QueryRelationships(ctx, f, opts) {
		if err != nil {
			return ReadPage{}, fmt.Errorf("engine: read relationships: %w", err)
		}
		if len(page.Relationships) == pageSize {
			more = true
			break
		}
		page.Relationships = append(page.Relationships, r)
	}
	if more {
		page.Next = page.CursorAfter(len(page.Relationships) - 1)
	}
	return page, nil
}

// Export calls fn for every unexpired relationship at the revision c
// selects, in index order, and returns that revision's zookie. It stops at
// the first error fn returns and returns that error.
func (e *Engine) Export(ctx context.Context, c Consistency, fn func(tuple.Relationship) error) (zookie string, err error) {
	v, err := e.open(ctx, c)
	if err != nil {
		return "", err
	}
	for r, err := range v.reader.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{Now: e.now()}) {
		if err != nil {
			return "", fmt.Errorf("engine: export: %w", err)
		}
		if err := fn(r); err != nil {
			return "", err
		}
	}
	return e.zookieOf(v.rev), nil
}
