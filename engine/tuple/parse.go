package tuple

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Parse reads a relationship in text form:
//
//	resource_type:id#relation@subject_type:id[#relation][caveat:{json}][expiration:RFC3339]
//
// The optional suffixes follow the syntax of SpiceDB validation files, so
// existing files read unchanged. The result is validated.
func Parse(s string) (Relationship, error) {
	var r Relationship
	core, rest := s, ""
	if i := strings.IndexByte(s, '['); i >= 0 {
		core, rest = s[:i], s[i:]
	}
	core = strings.TrimSpace(core)
	at := strings.IndexByte(core, '@')
	if at < 0 {
		return r, invalid("relationship", s, "missing \"@\" between resource and subject")
	}
	res, sub := core[:at], core[at+1:]
	hash := strings.LastIndexByte(res, '#')
	if hash < 0 {
		return r, invalid("relationship", s, "missing \"#relation\" after the resource")
	}
	obj, err := parseObject("resource", res[:hash])
	if err != nil {
		return r, err
	}
	r.Resource = obj
	r.Relation = res[hash+1:]
	subject, err := ParseSubject(sub)
	if err != nil {
		return r, err
	}
	r.Subject = subject
	for rest != "" {
		body, tail, err := splitBracket(rest)
		if err != nil {
			return r, invalid("relationship", s, err.Error())
		}
		rest = strings.TrimSpace(tail)
		if err := r.applySuffix(body); err != nil {
			return r, err
		}
	}
	return r, r.Validate()
}

// ParseSubject reads type:id or type:id#relation.
func ParseSubject(s string) (SubjectRef, error) {
	var sub SubjectRef
	objPart := s
	if i := strings.IndexByte(s, '#'); i >= 0 {
		objPart, sub.Relation = s[:i], s[i+1:]
		if sub.Relation == "" {
			return sub, invalid("subject", s, "empty relation after \"#\"")
		}
		if sub.Relation == Ellipsis {
			sub.Relation = ""
		}
	}
	obj, err := parseObject("subject", objPart)
	if err != nil {
		return sub, err
	}
	sub.Type, sub.ID = obj.Type, obj.ID
	return sub, sub.Validate()
}

// ParseObject reads type:id and validates it (no wildcard).
func ParseObject(s string) (ObjectRef, error) {
	o, err := parseObject("object", s)
	if err != nil {
		return o, err
	}
	if err := ValidateType("object type", o.Type); err != nil {
		return o, err
	}
	return o, ValidateID("object id", o.ID, false)
}

func parseObject(field, s string) (ObjectRef, error) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return ObjectRef{}, invalid(field, s, "expected type:id")
	}
	return ObjectRef{Type: s[:i], ID: s[i+1:]}, nil
}

// splitBracket takes "[...]rest" and returns the text inside the brackets,
// skipping brackets nested inside JSON values and strings.
func splitBracket(s string) (body, rest string, err error) {
	if s[0] != '[' {
		return "", "", fmt.Errorf("unexpected %q after the subject", s)
	}
	depth := 0
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				if c != ']' {
					return "", "", fmt.Errorf("unbalanced brackets in %q", s)
				}
				return s[1:i], s[i+1:], nil
			}
		}
	}
	return "", "", fmt.Errorf("unterminated \"[\" in %q", s)
}

func (r *Relationship) applySuffix(body string) error {
	name, value, ok := strings.Cut(body, ":")
	if !ok {
		name, value = body, ""
	}
	name = strings.TrimSpace(name)
	value = strings.TrimSpace(value)
	if name == "expiration" {
		if !r.Expiration.IsZero() {
			return invalid("expiration", value, "given twice")
		}
		t, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			return invalid("expiration", value, "not an RFC 3339 time")
		}
		r.Expiration = t.UTC()
		return nil
	}
	if r.Caveat != nil {
		return invalid("caveat", body, "a relationship has at most one caveat")
	}
	c := &Caveat{Name: name}
	if value != "" {
		ctx, err := ParseContext(value)
		if err != nil {
			return err
		}
		c.Context = ctx
	}
	r.Caveat = c
	return nil
}

// ParseContext decodes a caveat context: a JSON object. Numbers are kept as
// json.Number so that integers survive exactly.
func ParseContext(s string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, invalid("caveat context", s, "not a JSON object: "+err.Error())
	}
	if dec.More() {
		return nil, invalid("caveat context", s, "trailing data after the JSON object")
	}
	if m == nil {
		return nil, invalid("caveat context", s, "not a JSON object")
	}
	return m, nil
}

// String formats r in the text form that Parse reads. Caveat context keys
// are sorted, so equal relationships format equally.
func (r Relationship) String() string {
	var b strings.Builder
	b.WriteString(r.Key().String())
	if r.Caveat != nil {
		b.WriteByte('[')
		b.WriteString(r.Caveat.Name)
		if len(r.Caveat.Context) > 0 {
			b.WriteByte(':')
			b.WriteString(FormatContext(r.Caveat.Context))
		}
		b.WriteByte(']')
	}
	if !r.Expiration.IsZero() {
		b.WriteString("[expiration:")
		b.WriteString(r.Expiration.UTC().Format(time.RFC3339Nano))
		b.WriteByte(']')
	}
	return b.String()
}

// FormatContext encodes a caveat context as compact JSON with sorted keys.
func FormatContext(ctx map[string]any) string {
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(ctx[k])
		if err != nil {
			vb = []byte("null")
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.String()
}
