package cli

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// maxLine bounds one line of a relationship file: a tuple with a large
// caveat context (the server accepts contexts up to 64 KiB).
const maxLine = 1 << 20

// readTuples calls fn with each relationship of a relationship file and
// its line number: one tuple per line in tuple.Parse's syntax; blank lines
// and lines starting with // are skipped. Errors name the file and line.
func readTuples(r io.Reader, name string, fn func(rel tuple.Relationship, line int) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "//") {
			continue
		}
		rel, err := tuple.Parse(text)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if err := fn(rel, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return nil
}

// jsonRelationship is a relationship in JSON output: its parts for jq, and
// its text form for tuple.Parse.
type jsonRelationship struct {
	Resource      string         `json:"resource"`
	Relation      string         `json:"relation"`
	Subject       string         `json:"subject"`
	Caveat        string         `json:"caveat,omitempty"`
	CaveatContext map[string]any `json:"caveat_context,omitempty"`
	ExpiresAt     string         `json:"expires_at,omitempty"`
	Text          string         `json:"text"`
}

func toJSONRelationship(r tuple.Relationship) jsonRelationship {
	j := jsonRelationship{Resource: r.Resource.String(), Relation: r.Relation, Subject: r.Subject.String(), Text: r.String()}
	if r.Caveat != nil {
		j.Caveat = r.Caveat.Name
		j.CaveatContext = r.Caveat.Context
	}
	if !r.Expiration.IsZero() {
		j.ExpiresAt = r.Expiration.UTC().Format(time.RFC3339Nano)
	}
	return j
}

// filterFlags are the relationship filter of read, export and delete.
type filterFlags struct {
	resourceType string
	resourceID   string
	relation     string
	subject      string
}

func registerFilterFlags(fs *flag.FlagSet) *filterFlags {
	f := &filterFlags{}
	fs.StringVar(&f.resourceType, "resource-type", "", "resource type")
	fs.StringVar(&f.resourceID, "resource-id", "", "resource ID (needs --resource-type)")
	fs.StringVar(&f.relation, "relation", "", "relation")
	fs.StringVar(&f.subject, "subject", "", "subject filter: TYPE, TYPE:ID, TYPE:ID#REL or TYPE#REL (REL ... selects plain objects only)")
	return f
}

// filter converts the flags to the API's filter.
func (f *filterFlags) filter(usage string) (*pb.RelationshipFilter, error) {
	if f.resourceID != "" && f.resourceType == "" {
		return nil, usagef(usage, "--resource-id needs --resource-type")
	}
	tf := tuple.Filter{ResourceType: f.resourceType, ResourceID: f.resourceID, Relation: f.relation}
	if f.subject != "" {
		sf, err := parseSubjectFilter(f.subject)
		if err != nil {
			return nil, usagef(usage, "--subject: %v", err)
		}
		tf.Subject = &sf
	}
	return client.Filter(tf), nil
}

// parseSubjectFilter reads TYPE[:ID][#REL].
func parseSubjectFilter(s string) (tuple.SubjectFilter, error) {
	var sf tuple.SubjectFilter
	rest, rel, hasRel := strings.Cut(s, "#")
	if hasRel {
		if rel == "" {
			return sf, fmt.Errorf("%q: empty relation after #", s)
		}
		sf.Relation = rel
	}
	typ, id, hasID := strings.Cut(rest, ":")
	if typ == "" || (hasID && id == "") {
		return sf, fmt.Errorf("%q: want TYPE[:ID][#REL]", s)
	}
	sf.Type, sf.ID = typ, id
	return sf, nil
}
