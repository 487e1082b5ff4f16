//lint:file-ignore SA1019 this file fills deprecated fields on purpose, for clients that still read them.

package authzed

import v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

// fillDeprecated copies a LookupSubjects result into the response's
// deprecated top-level fields, which clients written before
// ResolvedSubject still read (SpiceDB fills both).
func fillDeprecated(msg *v1.LookupSubjectsResponse, excluded []string) {
	msg.SubjectObjectId = msg.GetSubject().GetSubjectObjectId()
	msg.Permissionship = msg.GetSubject().GetPermissionship()
	msg.PartialCaveatInfo = msg.GetSubject().GetPartialCaveatInfo()
	msg.ExcludedSubjectIds = excluded
}
