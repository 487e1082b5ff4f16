package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// setFlags are the flags of pemba check that ask a permission set.
type setFlags struct {
	resources objectList
	relations *bool
}

func permissionSetFlags(fs *flag.FlagSet) *setFlags {
	sf := &setFlags{}
	fs.Var(&sf.resources, "resource", "another resource of the same type to answer the permission set for (repeatable; a row of the matrix)")
	sf.relations = fs.Bool("relations", false, "with RESOURCE#*: answer the type's relations too, not only its permissions")
	return sf
}

// isSet reports whether a check with permission perm asks a permission
// set: every permission (*), a list (view,edit), or several resources.
func (sf *setFlags) isSet(perm string) bool {
	return perm == "*" || strings.Contains(perm, ",") || len(sf.resources.objs) > 0 || *sf.relations
}

// objectList is a repeatable flag of objects.
type objectList struct {
	objs []tuple.ObjectRef
}

func (l *objectList) String() string { return "" }

func (l *objectList) Set(s string) error {
	o, err := tuple.ParseObject(s)
	if err != nil {
		return err
	}
	l.objs = append(l.objs, o)
	return nil
}

// checkSet asks CheckPermissionSet and prints one line per cell:
// RESOURCE#PERMISSION ANSWER. With explain, each line is followed by the
// cell's explanation as pemba check --explain draws it, and a blank line
// separates the cells; in JSON each cell has the API's CheckExplanation
// in "explanation".
func checkSet(ctx context.Context, inv *invocation, usage string, qf *queryFlags, sf *setFlags, res tuple.ObjectRef, perm string, sub tuple.SubjectRef, explain bool) error {
	var perms []string
	if perm != "*" {
		perms = strings.Split(perm, ",")
		if slices.Contains(perms, "") || slices.Contains(perms, "*") {
			return usagef(usage, "%q: want * or a comma-separated list of permissions", perm)
		}
		if *sf.relations {
			return usagef(usage, "--relations goes with RESOURCE#*, not with a list of permissions")
		}
	}
	req := &pb.CheckPermissionSetRequest{OptionalPermissions: perms, IncludeRelations: *sf.relations, Subject: client.Subject(sub), Explain: explain}
	for _, o := range append([]tuple.ObjectRef{res}, sf.resources.objs...) {
		req.Resources = append(req.Resources, client.Object(o))
	}
	q, err := qf.open(inv, usage)
	if err != nil {
		return err
	}
	defer q.c.Close()
	req.Consistency, req.Context, req.ContextualRelationships = q.cons, q.ctx, q.with
	resp, err := q.c.Permissions.CheckPermissionSet(ctx, req)
	if err != nil {
		return err
	}
	type cellJSON struct {
		Permission     string          `json:"permission"`
		Permissionship string          `json:"permissionship,omitempty"`
		Allowed        bool            `json:"allowed"`
		Missing        []string        `json:"missing_context,omitempty"`
		Error          string          `json:"error,omitempty"`
		Explanation    json.RawMessage `json:"explanation,omitempty"`
	}
	type rowJSON struct {
		Resource string     `json:"resource"`
		Cells    []cellJSON `json:"cells"`
	}
	var rows []rowJSON
	m := protojson.MarshalOptions{UseProtoNames: true}
	first := true
	for _, row := range resp.GetRows() {
		name := row.GetResource().GetObjectType() + ":" + row.GetResource().GetObjectId()
		rj := rowJSON{Resource: name}
		for _, c := range row.GetCells() {
			cj := cellJSON{Permission: c.GetPermission()}
			if explain && !inv.json && !first {
				inv.printf("\n")
			}
			first = false
			if e := c.GetError(); e != nil {
				cj.Error = e.GetMessage()
				if !inv.json {
					inv.printf("%s#%s error: %s\n", name, c.GetPermission(), e.GetMessage())
				}
			} else {
				p := c.GetAnswer().GetPermissionship()
				cj.Permissionship, cj.Allowed = permissionshipName(p), p == pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION
				cj.Missing = c.GetAnswer().GetPartialCaveatInfo().GetMissingRequiredContext()
				if !inv.json {
					inv.printf("%s#%s %s%s\n", name, c.GetPermission(), permissionshipWord(p), missingSuffix(p, c.GetAnswer().GetPartialCaveatInfo()))
				}
			}
			if x := c.GetExplanation(); x != nil {
				if inv.json {
					if cj.Explanation, err = m.Marshal(x); err != nil {
						return fmt.Errorf("encode the explanation of %s#%s: %w", name, c.GetPermission(), err)
					}
				} else {
					inv.printf("%s", renderExplanation(x))
				}
			}
			rj.Cells = append(rj.Cells, cj)
		}
		rows = append(rows, rj)
	}
	if inv.json {
		return inv.emitJSON(struct {
			Permissions []string  `json:"permissions"`
			Rows        []rowJSON `json:"rows"`
			Zookie      string    `json:"zookie"`
		}{resp.GetPermissions(), rows, resp.GetCheckedAt().GetToken()})
	}
	inv.infof("checked at %s\n", resp.GetCheckedAt().GetToken())
	return nil
}
