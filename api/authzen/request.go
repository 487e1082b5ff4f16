package authzen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema/names"
)

// The wire types of the Authorization API 1.0 (§5 Information Model,
// §6-§8 requests). Unknown members are ignored, as §10.1.1 requires;
// members of the wrong JSON type fail decoding with a 400.

// entity is a Subject (§5.1) or a Resource (§5.2).
type entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// action is an Action (§5.3).
type action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// evaluationRequest is an Access Evaluation request (§6.1), and one item
// of the evaluations array of an Access Evaluations request (§7.1).
type evaluationRequest struct {
	Subject  *entity        `json:"subject,omitempty"`
	Action   *action        `json:"action,omitempty"`
	Resource *entity        `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
}

// evaluationsRequest is an Access Evaluations request (§7.1): top-level
// defaults, the items and the options (§7.1.2).
type evaluationsRequest struct {
	evaluationRequest
	Evaluations []*evaluationRequest `json:"evaluations"`
	Options     map[string]any       `json:"options"`
}

// searchRequest is a Subject, Resource or Action Search request (§8.4.1,
// §8.5.1, §8.6.1) with its paging (§8.2.1).
type searchRequest struct {
	evaluationRequest
	Page *pageRequest `json:"page,omitempty"`
}

// pageRequest is the page object of a search request (§8.2.1).
type pageRequest struct {
	Token      string         `json:"token,omitempty"`
	Limit      *int           `json:"limit,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// badRequest is a request the API refuses as a whole, with its status
// (400, 413) and a message for the caller.
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &badRequest{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decode reads the JSON object of r's body into dst. The body must be
// labelled application/json (§10.1), hold exactly one JSON object and fit
// in maxBytes.
func decode(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return invalid("the request's Content-Type is %q; it must be application/json", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return &badRequest{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the request body is larger than %d bytes", maxBytes)}
		}
		return invalid("reading the request body: %v", err)
	}
	return decodeBody(body, dst)
}

// decodeBody is decode's parser, separate for the fuzz test.
func decodeBody(body []byte, dst any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return invalid("the request body is empty; it must be a JSON object")
	}
	if trimmed[0] != '{' {
		return invalid("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber() // caveat integers beyond 2^53 keep their value
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid("the request body is not valid: %s must be a JSON %s, not %s", te.Field, jsonType(te.Type.Kind().String()), te.Value)
		}
		return invalid("the request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("the request body has data after its JSON object")
	}
	return nil
}

// jsonType names a Go kind as JSON does.
func jsonType(kind string) string {
	switch kind {
	case "struct", "map", "ptr":
		return "object"
	case "slice":
		return "array"
	case "int", "int64":
		return "integer"
	case "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return kind
}

// need says which identifiers an entity must carry; search requests omit
// the id of the entity searched for.
type need uint8

const (
	needID need = iota
	typeOnly
)

// check validates a required Subject or Resource: present, with a type
// and, unless n is typeOnly, an id (§5.1, §5.2; a missing one is a 400,
// §10.1.1).
func (e *entity) check(field string, n need) error {
	switch {
	case e == nil:
		return invalid("%s is required", field)
	case e.Type == "":
		return invalid("%s.type is required", field)
	case n == needID && e.ID == "":
		return invalid("%s.id is required", field)
	}
	return nil
}

func (a *action) check(field string) error {
	switch {
	case a == nil:
		return invalid("%s is required", field)
	case a.Name == "":
		return invalid("%s.name is required", field)
	}
	return nil
}

// errUnknownName marks a type or action name that cannot name anything in
// a Pemba schema: like a well-formed name the schema lacks, it is unknown
// (a deny, or an empty search), not a malformed request.
var errUnknownName = errors.New("authzen: not a name in the schema")

// relationProperty is the subject property that names a subject relation
// (a userset: group:eng with relation "member" is group:eng#member).
const relationProperty = "relation"

// subjectRef maps a Subject onto a Pemba subject: type and id (escaped,
// "*" the wildcard) and, from properties.relation, the subject relation.
func subjectRef(field string, e *entity, withID bool) (tuple.SubjectRef, error) {
	s := tuple.SubjectRef{Type: e.Type}
	if names.CheckType(e.Type) != nil {
		return s, fmt.Errorf("%w: %s.type %q", errUnknownName, field, e.Type)
	}
	if withID {
		id, err := subjectID(field+".id", e.ID)
		if err != nil {
			return s, &badRequest{status: http.StatusBadRequest, msg: err.Error()}
		}
		s.ID = id
	}
	if v, ok := e.Properties[relationProperty]; ok {
		rel, isString := v.(string)
		if !isString {
			return s, invalid("%s.properties.%s must be a string (the subject relation)", field, relationProperty)
		}
		if names.CheckName(rel) != nil {
			return s, fmt.Errorf("%w: %s.properties.%s %q", errUnknownName, field, relationProperty, rel)
		}
		s.Relation = rel
	}
	return s, nil
}

// objectRef maps a Resource onto a Pemba object.
func objectRef(field string, e *entity, withID bool) (tuple.ObjectRef, error) {
	o := tuple.ObjectRef{Type: e.Type}
	if names.CheckType(e.Type) != nil {
		return o, fmt.Errorf("%w: %s.type %q", errUnknownName, field, e.Type)
	}
	if withID {
		id, err := objectID(field+".id", e.ID)
		if err != nil {
			return o, &badRequest{status: http.StatusBadRequest, msg: err.Error()}
		}
		o.ID = id
	}
	return o, nil
}

// permission maps an action onto a permission or relation name.
func permission(field string, a *action) (string, error) {
	if names.CheckName(a.Name) != nil {
		return "", fmt.Errorf("%w: %s.name %q", errUnknownName, field, a.Name)
	}
	return a.Name, nil
}

// caveatContext is the caveat context of a request: its context object,
// plus every property of the subject, resource and action as a parameter
// named "<entity>_<key>" (subject_role, resource_status, action_soft), so
// that a caveat can decide on attributes the PEP sends. The context
// object wins when a name is in both; subject.properties.relation is the
// subject relation, not a parameter. Nil when there is nothing.
func caveatContext(subj *entity, act *action, res *entity, ctx map[string]any) map[string]any {
	n := len(ctx)
	if subj != nil {
		n += len(subj.Properties)
	}
	if act != nil {
		n += len(act.Properties)
	}
	if res != nil {
		n += len(res.Properties)
	}
	if n == len(ctx) {
		return ctx
	}
	out := make(map[string]any, n)
	add := func(prefix string, props map[string]any) {
		for k, v := range props {
			if prefix == "subject_" && k == relationProperty {
				continue
			}
			out[prefix+k] = v
		}
	}
	if subj != nil {
		add("subject_", subj.Properties)
	}
	if act != nil {
		add("action_", act.Properties)
	}
	if res != nil {
		add("resource_", res.Properties)
	}
	for k, v := range ctx {
		out[k] = v
	}
	return out
}

// fieldName prefixes a field with the path of the item it belongs to.
func fieldName(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}
