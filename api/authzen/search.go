package authzen

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/schema"
)

// The search endpoints (§8). A search returns what an evaluation would
// permit (§8.1): results whose answer is conditional on caveat context
// the request lacks are left out. A wildcard grant (user:*) is the result
// {"type": "user", "id": "*"}, with the subjects it excludes, if any, in
// properties.excluded_ids. A type, relation or permission the schema
// lacks finds nothing (an empty result list, certification scenario
// §C-4-6), not an error.

// searchResponse is a Search API response (§8.3); page comes first, as
// §8.3 recommends.
type searchResponse struct {
	Page    pageResponse `json:"page"`
	Results []any        `json:"results"`
}

// pageResponse is the page object of a search response (§8.2.2). Every
// response carries one: next_token is "" on the last page.
type pageResponse struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
}

// pageToken is what a next_token holds (base64url of its JSON). Subject
// and resource searches resume with the engine's cursor, which pins the
// listing's revision; an action search with the revision's zookie and the
// last action returned. Request is a digest of the request the token was
// issued for: §8.2 wants an error when a later page changes any entity
// (the page size travels in the token).
type pageToken struct {
	Cursor  string `json:"c,omitempty"`
	Zookie  string `json:"z,omitempty"`
	After   string `json:"a,omitempty"`
	Limit   int    `json:"l"`
	Request string `json:"r"`
}

// maxTokenLen bounds a page token before it is decoded.
const maxTokenLen = 4096

// search is one search request being answered.
type search struct {
	h      *Handler
	req    searchRequest
	limit  int
	token  pageToken // of the request; zero on a first page
	digest string
}

// searchStep walks a search's answers in order, yielding each permitted
// result and a function making the token that resumes after it.
type searchStep func(yield func(result any, resume func() pageToken) bool) error

// startSearch decodes and validates a search request. ignore clears the
// id the search ignores (§8.4.1, §8.5.1) so that the digest ignores it too.
func (h *Handler) startSearch(w http.ResponseWriter, r *http.Request, validate func(*searchRequest) error, ignore func(*searchRequest)) (*search, bool) {
	s := &search{h: h, limit: h.pageSize}
	if err := decode(w, r, h.maxBody, &s.req); err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	if err := validate(&s.req); err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	ignore(&s.req)
	page := s.req.Page
	s.req.Page = nil // the digest covers the entities and the context
	s.digest = requestDigest(&s.req)
	var limit *int
	if page != nil {
		if limit = page.Limit; limit != nil {
			switch l := *limit; {
			case l < 0:
				h.fail(w, r, invalid("page.limit must not be negative"))
				return nil, false
			case l > 0 && l < s.limit:
				// 0, like no limit, asks for the PDP's page size.
				s.limit = l
			}
		}
		if page.Token != "" {
			if err := s.decodeToken(page.Token); err != nil {
				h.fail(w, r, err)
				return nil, false
			}
			// A later page may leave page.limit out (the examples of
			// §8.2.3 do); a different one is a changed request.
			if limit != nil && s.limit != s.token.Limit {
				h.fail(w, r, invalid("page.limit is %d; the request that received page.token had %d", *limit, s.token.Limit))
				return nil, false
			}
			s.limit = s.token.Limit
		}
	}
	return s, true
}

func requestDigest(req *searchRequest) string {
	sum := sha256.Sum256([]byte(jsonText(req)))
	return hex.EncodeToString(sum[:8])
}

func (s *search) decodeToken(text string) error {
	bad := invalid("page.token is not a token this PDP issued")
	if len(text) > maxTokenLen {
		return bad
	}
	b, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || json.Unmarshal(b, &s.token) != nil {
		return bad
	}
	if s.token.Request != s.digest {
		return invalid("page.token was issued for another request: every entity and the context must stay as they were (§8.2)")
	}
	if s.token.Limit <= 0 || s.token.Limit > s.h.pageSize {
		return bad
	}
	return nil
}

func (s *search) encodeToken(t pageToken) string {
	t.Request = s.digest
	t.Limit = s.limit
	return base64.RawURLEncoding.EncodeToString([]byte(jsonText(t)))
}

// caveatContext is the search's caveat context (see caveatContext).
func (s *search) caveatContext() map[string]any {
	return caveatContext(s.req.Subject, s.req.Action, s.req.Resource, s.req.Context)
}

// answer collects one page from step and writes the response.
func (s *search) answer(w http.ResponseWriter, r *http.Request, step searchStep, err error) {
	resp := searchResponse{Results: []any{}}
	if err == nil {
		var last func() pageToken
		err = step(func(result any, resume func() pageToken) bool {
			if len(resp.Results) == s.limit {
				// One more result exists: the page ends before it.
				resp.Page.NextToken = s.encodeToken(last())
				return false
			}
			resp.Results = append(resp.Results, result)
			last = resume
			return true
		})
	}
	if err != nil {
		f := classify(s.h.log, r.Pattern, err)
		if !f.unknown {
			writeError(w, f)
			return
		}
		resp = searchResponse{Results: []any{}}
	}
	resp.Page.Count = len(resp.Results)
	s.h.reply(w, resp)
}

// searchSubject serves POST /access/v1/search/subject (§8.4) with
// LookupSubjects. subject.properties.relation searches usersets (type
// group, relation member: the groups whose members are granted).
func (h *Handler) searchSubject(w http.ResponseWriter, r *http.Request) {
	s, ok := h.startSearch(w, r, func(q *searchRequest) error {
		if err := q.Subject.check("subject", typeOnly); err != nil {
			return err
		}
		if err := q.Action.check("action"); err != nil {
			return err
		}
		return q.Resource.check("resource", needID)
	}, func(q *searchRequest) { q.Subject.ID = "" })
	if !ok {
		return
	}
	step, err := s.subjects(r.Context())
	s.answer(w, r, step, err)
}

func (s *search) subjects(ctx context.Context) (searchStep, error) {
	subj, err := subjectRef("subject", s.req.Subject, false)
	if err != nil {
		return nil, err
	}
	perm, err := permission("action", s.req.Action)
	if err != nil {
		return nil, err
	}
	obj, err := objectRef("resource", s.req.Resource, true)
	if err != nil {
		return nil, err
	}
	seq, _, err := s.h.eng.LookupSubjects(ctx, engine.LookupSubjectsRequest{
		LookupSubjectsRequest: engine.LookupSubjectsQuery{
			Resource: obj, Permission: perm, SubjectType: subj.Type, SubjectRelation: subj.Relation,
		},
		Context: s.caveatContext(),
		Cursor:  s.token.Cursor,
	})
	if err != nil {
		return nil, err
	}
	return func(yield func(any, func() pageToken) bool) error {
		for res, err := range seq {
			if err != nil {
				return err
			}
			if res.Permissionship != engine.HasPermission {
				continue
			}
			e := entity{Type: subj.Type, ID: publicID(res.SubjectID)}
			if subj.Relation != "" || len(res.ExcludedIDs) > 0 {
				e.Properties = map[string]any{}
				if subj.Relation != "" {
					e.Properties[relationProperty] = subj.Relation
				}
				if len(res.ExcludedIDs) > 0 {
					ex := make([]string, len(res.ExcludedIDs))
					for i, id := range res.ExcludedIDs {
						ex[i] = publicID(id)
					}
					e.Properties["excluded_ids"] = ex
				}
			}
			if !yield(e, func() pageToken { return pageToken{Cursor: res.Cursor()} }) {
				return nil
			}
		}
		return nil
	}, nil
}

// searchResource serves POST /access/v1/search/resource (§8.5) with
// LookupResources.
func (h *Handler) searchResource(w http.ResponseWriter, r *http.Request) {
	s, ok := h.startSearch(w, r, func(q *searchRequest) error {
		if err := q.Subject.check("subject", needID); err != nil {
			return err
		}
		if err := q.Action.check("action"); err != nil {
			return err
		}
		return q.Resource.check("resource", typeOnly)
	}, func(q *searchRequest) { q.Resource.ID = "" })
	if !ok {
		return
	}
	step, err := s.resources(r.Context())
	s.answer(w, r, step, err)
}

func (s *search) resources(ctx context.Context) (searchStep, error) {
	subj, err := subjectRef("subject", s.req.Subject, true)
	if err != nil {
		return nil, err
	}
	perm, err := permission("action", s.req.Action)
	if err != nil {
		return nil, err
	}
	obj, err := objectRef("resource", s.req.Resource, false)
	if err != nil {
		return nil, err
	}
	seq, _, err := s.h.eng.LookupResources(ctx, engine.LookupResourcesRequest{
		LookupResourcesRequest: engine.LookupResourcesQuery{ResourceType: obj.Type, Permission: perm, Subject: subj},
		Context:                s.caveatContext(),
		Cursor:                 s.token.Cursor,
	})
	if err != nil {
		return nil, err
	}
	return func(yield func(any, func() pageToken) bool) error {
		for res, err := range seq {
			if err != nil {
				return err
			}
			if res.Permissionship != engine.HasPermission {
				continue
			}
			if !yield(entity{Type: obj.Type, ID: publicID(res.ResourceID)}, func() pageToken { return pageToken{Cursor: res.Cursor()} }) {
				return nil
			}
		}
		return nil
	}, nil
}

// searchAction serves POST /access/v1/search/action (§8.6): every
// permission of the resource's type, in schema order, is checked at one
// revision, and the permitted ones are the actions. Relations are data,
// not actions: they are not listed (an evaluation may still name one).
func (h *Handler) searchAction(w http.ResponseWriter, r *http.Request) {
	s, ok := h.startSearch(w, r, func(q *searchRequest) error {
		if err := q.Subject.check("subject", needID); err != nil {
			return err
		}
		return q.Resource.check("resource", needID)
	}, func(q *searchRequest) { q.Action = nil })
	if !ok {
		return
	}
	step, err := s.actions(r.Context())
	s.answer(w, r, step, err)
}

func (s *search) actions(ctx context.Context) (searchStep, error) {
	subj, err := subjectRef("subject", s.req.Subject, true)
	if err != nil {
		return nil, err
	}
	obj, err := objectRef("resource", s.req.Resource, true)
	if err != nil {
		return nil, err
	}
	cons := engine.MinimizeLatency()
	if s.token.Zookie != "" {
		cons = engine.AtExactSnapshot(s.token.Zookie)
	}
	read, err := s.h.eng.ReadSchema(ctx, cons)
	if err != nil {
		return nil, err
	}
	zookie := read.Zookie
	sch, err := s.h.compiled(read.Text)
	if err != nil {
		return nil, err
	}
	def := sch.Definitions[obj.Type]
	if def == nil {
		return nil, engine.ErrUnknownDefinition
	}
	var perms []string
	for _, rel := range def.Ordered {
		if rel.IsPermission {
			perms = append(perms, rel.Name)
		}
	}
	if after := s.token.After; after != "" {
		i := 0
		for i < len(perms) && perms[i] != after {
			i++
		}
		if i == len(perms) {
			return nil, invalid("page.token names no permission of %s", obj.Type)
		}
		perms = perms[i+1:]
	}
	cctx := s.caveatContext()
	return func(yield func(any, func() pageToken) bool) error {
		chunk := s.h.eng.Limits().MaxBulkCheckItems
		for len(perms) > 0 {
			n := min(chunk, len(perms))
			items := make([]engine.BulkCheckItem, n)
			for i, p := range perms[:n] {
				items[i] = engine.BulkCheckItem{CheckRequest: engine.CheckQuery{Resource: obj, Permission: p, Subject: subj}, Context: cctx}
			}
			resp, err := s.h.eng.CheckBulk(ctx, engine.BulkCheckRequest{Consistency: engine.AtExactSnapshot(zookie), Items: items})
			if err != nil {
				return err
			}
			for i, p := range perms[:n] {
				r := resp.Results[i]
				if r.Err != nil {
					return r.Err
				}
				if r.Permissionship != engine.HasPermission {
					continue
				}
				if !yield(action{Name: p}, func() pageToken { return pageToken{Zookie: zookie, After: p} }) {
					return nil
				}
			}
			perms = perms[n:]
		}
		return nil
	}, nil
}

// compiled returns the schema compiled from text, reusing the last one
// while the schema in force is the same.
func (h *Handler) compiled(text string) (*schema.Schema, error) {
	if s := h.schema.Load(); s != nil && s.Source == text {
		return s, nil
	}
	s, err := schema.Compile("schema", text)
	if err != nil {
		return nil, err
	}
	h.schema.Store(s)
	return s, nil
}
