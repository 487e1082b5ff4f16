package cli

import (
	"fmt"
	"strings"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// printImpact renders the answer of schema write --dry-run: the changes
// (to standard error in text, as a write lists them), then the impact on
// standard output, one line per permission and per sampled flip.
func (inv *invocation) printImpact(resp *pb.WriteSchemaResponse) error {
	im := resp.GetImpact()
	if inv.json {
		type change struct {
			Kind        string `json:"kind"`
			Definition  string `json:"definition,omitempty"`
			Name        string `json:"name,omitempty"`
			SubjectType string `json:"subject_type,omitempty"`
			Description string `json:"description,omitempty"`
		}
		type perm struct {
			Resource    string `json:"resource_type"`
			Permission  string `json:"permission"`
			Granted     uint64 `json:"granted"`
			Revoked     uint64 `json:"revoked"`
			Conditional uint64 `json:"conditional"`
			Resources   uint64 `json:"resources"`
			Truncated   bool   `json:"truncated,omitempty"`
		}
		type flip struct {
			Relationship string   `json:"relationship"`
			Excluded     []string `json:"excluded_subject_ids,omitempty"`
			Before       string   `json:"before"`
			After        string   `json:"after"`
		}
		out := struct {
			DryRun      bool     `json:"dry_run"`
			EvaluatedAt string   `json:"evaluated_at"`
			Changes     []change `json:"changes"`
			Permissions []perm   `json:"permissions"`
			Samples     []flip   `json:"samples"`
			Resources   uint64   `json:"resources_evaluated"`
			Truncated   bool     `json:"truncated"`
		}{DryRun: true, EvaluatedAt: im.GetEvaluatedAt().GetToken(), Changes: []change{}, Permissions: []perm{}, Samples: []flip{}, Resources: im.GetResourcesEvaluated(), Truncated: im.GetTruncated()}
		for _, ch := range resp.GetChanges() {
			out.Changes = append(out.Changes, change{ch.GetKind().String(), ch.GetDefinition(), ch.GetName(), ch.GetSubjectType(), ch.GetDescription()})
		}
		for _, p := range im.GetPermissions() {
			out.Permissions = append(out.Permissions, perm{p.GetResourceObjectType(), p.GetPermission(), p.GetGranted(), p.GetRevoked(), p.GetConditional(), p.GetResources(), p.GetTruncated()})
		}
		for _, f := range im.GetSamples() {
			out.Samples = append(out.Samples, flip{flipString(f), f.GetExcludedSubjectIds(), permissionshipName(f.GetBefore()), permissionshipName(f.GetAfter())})
		}
		return inv.emitJSON(out)
	}
	for _, ch := range resp.GetChanges() {
		inv.infof("%s\n", ch.GetDescription())
	}
	inv.infof("dry run: nothing written; %d changes, impact on the data at %s (%d resources evaluated)\n", len(resp.GetChanges()), im.GetEvaluatedAt().GetToken(), im.GetResourcesEvaluated())
	flips := uint64(0)
	for _, p := range im.GetPermissions() {
		n := p.GetGranted() + p.GetRevoked() + p.GetConditional()
		flips += n
		if n == 0 {
			continue
		}
		line := fmt.Sprintf("%s#%s: %d granted, %d revoked", p.GetResourceObjectType(), p.GetPermission(), p.GetGranted(), p.GetRevoked())
		if c := p.GetConditional(); c > 0 {
			line += fmt.Sprintf(", %d turned conditional or back", c)
		}
		if p.GetTruncated() {
			line += " (or more: not every resource was evaluated)"
		}
		inv.printf("%s\n", line)
	}
	for _, f := range im.GetSamples() {
		inv.printf("  %s: %s -> %s\n", flipString(f), permissionshipName(f.GetBefore()), permissionshipName(f.GetAfter()))
	}
	switch {
	case flips == 0 && !im.GetTruncated():
		inv.printf("no result changes\n")
	case uint64(len(im.GetSamples())) < flips:
		inv.printf("(%d of %d flips listed)\n", len(im.GetSamples()), flips)
	}
	if im.GetTruncated() {
		inv.warnf("the evaluation stopped at its bound on resources: the counts are lower bounds\n")
	}
	return nil
}

// flipString renders a flip as a relationship: doc:1#view@user:anne, or
// doc:1#view@user:* [excluding bob, carl].
func flipString(f *pb.SchemaImpactFlip) string {
	sub := f.GetSubject().GetObject().GetObjectType() + ":" + f.GetSubject().GetObject().GetObjectId()
	if r := f.GetSubject().GetOptionalRelation(); r != "" {
		sub += "#" + r
	}
	s := f.GetResource().GetObjectType() + ":" + f.GetResource().GetObjectId() + "#" + f.GetPermission() + "@" + sub
	if x := f.GetExcludedSubjectIds(); len(x) > 0 {
		s += " [excluding " + strings.Join(x, ", ") + "]"
	}
	return s
}
