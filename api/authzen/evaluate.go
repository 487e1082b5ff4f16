package authzen

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/pemba-authz/pemba/engine"
)

// decision is a Decision (§5.5).
type decision struct {
	Decision bool           `json:"decision"`
	Context  map[string]any `json:"context,omitempty"`
}

// evaluationsResponse is an Access Evaluations response (§7.2): the top
// level decision is omitted, as §7.2 recommends.
type evaluationsResponse struct {
	Evaluations []decision `json:"evaluations"`
}

// Evaluation semantics (§7.1.2.1).
const (
	executeAll          = "execute_all"
	denyOnFirstDeny     = "deny_on_first_deny"
	permitOnFirstPermit = "permit_on_first_permit"
)

// check is one evaluation mapped onto Pemba, or the error that kept it
// from being asked.
type check struct {
	req engine.CheckQuery
	ctx map[string]any
	err error
}

// newCheck maps one evaluation. prefix names the item in messages
// ("evaluations[2]"; "" for a single evaluation).
func newCheck(prefix string, subj *entity, act *action, res *entity, ctx map[string]any) check {
	var c check
	if c.err = subj.check(fieldName(prefix, "subject"), needID); c.err != nil {
		return c
	}
	if c.err = act.check(fieldName(prefix, "action")); c.err != nil {
		return c
	}
	if c.err = res.check(fieldName(prefix, "resource"), needID); c.err != nil {
		return c
	}
	if c.req.Subject, c.err = subjectRef(fieldName(prefix, "subject"), subj, true); c.err != nil {
		return c
	}
	if c.req.Permission, c.err = permission(fieldName(prefix, "action"), act); c.err != nil {
		return c
	}
	if c.req.Resource, c.err = objectRef(fieldName(prefix, "resource"), res, true); c.err != nil {
		return c
	}
	c.ctx = caveatContext(subj, act, res, ctx)
	return c
}

// request is the engine's request for c at consistency cons.
func (c check) request(cons engine.Consistency) engine.CheckRequest {
	req := engine.CheckRequest{Consistency: cons, Context: c.ctx}
	req.Resource, req.Permission, req.Subject = c.req.Resource, c.req.Permission, c.req.Subject
	return req
}

// answer turns a check result into a decision. Only HasPermission is a
// permit. A conditional answer (the caveat needs context the request did
// not supply) is a deny whose context names the missing parameters:
//
//	{"decision": false, "context": {"reason": "missing caveat context: subject_role",
//	  "missing_context": ["subject_role"]}}
func answer(r engine.CheckResult) decision {
	switch r.Permissionship {
	case engine.HasPermission:
		return decision{Decision: true}
	case engine.ConditionalPermission:
		missing := make([]any, len(r.MissingContext))
		for i, m := range r.MissingContext {
			missing[i] = m
		}
		return decision{Context: map[string]any{
			"reason":          "missing caveat context: " + strings.Join(r.MissingContext, ", "),
			"missing_context": missing,
		}}
	}
	return decision{}
}

// evaluation serves POST /access/v1/evaluation (§6).
func (h *Handler) evaluation(w http.ResponseWriter, r *http.Request) {
	var req evaluationRequest
	if err := decode(w, r, h.maxBody, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.single(w, r, &req)
}

// single answers one evaluation, for both endpoints (§7.1: an Access
// Evaluations request without items is a single evaluation). A malformed
// request is a 400; a type or action the schema lacks is a deny.
func (h *Handler) single(w http.ResponseWriter, r *http.Request, req *evaluationRequest) {
	c := newCheck("", req.Subject, req.Action, req.Resource, req.Context)
	if c.err == nil {
		var res engine.CheckResponse
		res, c.err = h.eng.Check(r.Context(), c.request(engine.MinimizeLatency()))
		if c.err == nil {
			h.reply(w, answer(res.CheckResult))
			return
		}
	}
	f := classify(h.log, r.Pattern, c.err)
	if !f.unknown {
		writeError(w, f)
		return
	}
	h.reply(w, itemError(f))
}

// evaluations serves POST /access/v1/evaluations (§7).
func (h *Handler) evaluations(w http.ResponseWriter, r *http.Request) {
	var req evaluationsRequest
	if err := decode(w, r, h.maxBody, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	semantic := executeAll
	if v, ok := req.Options["evaluations_semantic"]; ok {
		s, _ := v.(string)
		switch s {
		case executeAll, denyOnFirstDeny, permitOnFirstPermit:
			semantic = s
		default:
			h.fail(w, r, invalid("options.evaluations_semantic must be %q, %q or %q, not %s",
				executeAll, denyOnFirstDeny, permitOnFirstPermit, jsonText(v)))
			return
		}
	}
	if len(req.Evaluations) == 0 {
		h.single(w, r, &req.evaluationRequest)
		return
	}
	if max := h.eng.Limits().MaxBulkCheckItems; len(req.Evaluations) > max {
		h.fail(w, r, invalid("the request has %d evaluations; at most %d are allowed", len(req.Evaluations), max))
		return
	}
	// §7.1.1: an item's subject, action, resource and context each replace
	// the top-level one as a whole; absent ones are inherited.
	checks := make([]check, len(req.Evaluations))
	for i, it := range req.Evaluations {
		if it == nil {
			it = &evaluationRequest{}
		}
		subj, act, res, ctx := it.Subject, it.Action, it.Resource, it.Context
		if subj == nil {
			subj = req.Subject
		}
		if act == nil {
			act = req.Action
		}
		if res == nil {
			res = req.Resource
		}
		if ctx == nil {
			ctx = req.Context
		}
		checks[i] = newCheck("evaluations["+strconv.Itoa(i)+"]", subj, act, res, ctx)
	}
	var (
		out []decision
		err error
	)
	if semantic == executeAll {
		out, err = h.executeAll(r.Context(), r.Pattern, checks)
	} else {
		out, err = h.shortCircuit(r.Context(), r.Pattern, checks, semantic)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, evaluationsResponse{Evaluations: out})
}

// executeAll answers every item with one bulk check, at one revision.
func (h *Handler) executeAll(ctx context.Context, route string, checks []check) ([]decision, error) {
	out := make([]decision, len(checks))
	var items []engine.BulkCheckItem
	var index []int // of the items, in checks
	for i, c := range checks {
		if c.err != nil {
			out[i] = itemError(classify(h.log, route, c.err))
			continue
		}
		items = append(items, engine.BulkCheckItem{CheckRequest: c.req, Context: c.ctx})
		index = append(index, i)
	}
	if len(items) == 0 {
		return out, nil
	}
	resp, err := h.eng.CheckBulk(ctx, engine.BulkCheckRequest{Consistency: engine.MinimizeLatency(), Items: items})
	if err != nil {
		return nil, err
	}
	for j, i := range index {
		r := resp.Results[j]
		if out[i], err = h.itemDecision(route, r.CheckResult, r.Err); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// shortCircuit answers the items in order and stops after the first deny
// (deny_on_first_deny) or the first permit (permit_on_first_permit), as
// §7.1.2.1 describes; the response holds the items answered. A failed
// item counts as a deny. Every item is answered at the first one's
// revision.
func (h *Handler) shortCircuit(ctx context.Context, route string, checks []check, semantic string) ([]decision, error) {
	var out []decision
	cons := engine.MinimizeLatency()
	for _, c := range checks {
		var d decision
		if c.err != nil {
			d = itemError(classify(h.log, route, c.err))
		} else {
			res, err := h.eng.Check(ctx, c.request(cons))
			if err == nil {
				cons = engine.AtExactSnapshot(res.Zookie)
			}
			if d, err = h.itemDecision(route, res.CheckResult, err); err != nil {
				return nil, err
			}
		}
		if semantic == permitOnFirstPermit && d.Decision {
			return append(out, d), nil
		}
		if semantic == denyOnFirstDeny && !d.Decision {
			if d.Context == nil {
				// The specification's own example of this semantic
				// (§7.1.2.1) marks the item that ended the batch so.
				d.Context = map[string]any{"code": "200", "reason": denyOnFirstDeny}
			}
			return append(out, d), nil
		}
		out = append(out, d)
	}
	return out, nil
}

// itemDecision is the decision of one item of a batch, or the error that
// fails the whole batch (the datastore is down: no item can be answered).
func (h *Handler) itemDecision(route string, res engine.CheckResult, err error) (decision, error) {
	if err == nil {
		return answer(res), nil
	}
	f := classify(h.log, route, err)
	if f.whole {
		return decision{}, err
	}
	return itemError(f), nil
}

// jsonText is v as compact JSON, for messages and grouping keys.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}
