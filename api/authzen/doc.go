// Package authzen serves the OpenID AuthZEN Authorization API 1.0 over a
// Pemba engine: an http.Handler that a policy enforcement point (an API
// gateway, a service, a serverless function) calls to ask for decisions
// without speaking gRPC or knowing Pemba's API.
//
// Section numbers (§) follow the headings of the specification's source,
// api/authorization-api-1_0.md in github.com/openid/authzen; "§C-..."
// refers to its certification scenario,
// certification/authorization-api-1_0-scenario.md.
//
// # Endpoints
//
//	POST /access/v1/evaluation          one decision (§6)            Check
//	POST /access/v1/evaluations         a batch of decisions (§7)    CheckBulk, Check
//	POST /access/v1/search/subject      who may? (§8.4)              LookupSubjects
//	POST /access/v1/search/resource     on what may? (§8.5)          LookupResources
//	POST /access/v1/search/action       what may? (§8.6)             every permission of the type, checked
//	GET  /.well-known/authzen-configuration   metadata (§9)
//
// # Mapping
//
//   - subject {type, id} is the subject type:id; resource {type, id} the
//     object type:id. An id is any string: characters Pemba IDs do not
//     allow, and '~', are escaped as '~' and two hex digits, so
//     "alice@example.com" is the Pemba ID "alice~40example.com" (write
//     relationships with the escaped form). A subject id "*" is the
//     wildcard, every subject of the type.
//   - subject.properties.relation is the subject relation: {"type":
//     "group", "id": "eng", "properties": {"relation": "member"}} is the
//     userset group:eng#member.
//   - action.name is the permission (or relation) checked.
//   - context is the caveat context. Every other property of the subject,
//     the resource and the action is a caveat parameter too, named
//     "<entity>_<key>": subject.properties.role is subject_role,
//     resource.properties.status is resource_status, action.properties.soft
//     is action_soft. The context object wins when it names the same
//     parameter, and values stored on a relationship win over both.
//   - Only a definite yes permits. A conditional answer, one that depends
//     on caveat parameters the request did not supply, is a deny whose
//     context names them:
//     {"decision": false, "context": {"reason": "missing caveat context:
//     subject_role", "missing_context": ["subject_role"]}}.
//   - A type, permission or relation the schema lacks is a deny with
//     context {"error": {"status": 404, "message": ...}} (the shape of the
//     specification's per-evaluation errors, §7.2.1), and a search finds
//     nothing (§C-4-6).
//
// Searches return only results an evaluation would permit (§8.1), in ID
// order (action search: schema order), a page at a time (§8.2): every
// response has page.next_token ("" on the last page) and page.count; a
// request continues with page.token and must otherwise be unchanged.
// Pages of a search are answered at the revision of its first page.
// Evaluations are answered at the engine's default consistency
// (minimize_latency); the items of one batch share one revision.
//
// # Batches
//
// The items of an evaluations request inherit the top-level subject,
// action, resource and context, each replaced as a whole by an item that
// has its own (§7.1.1). options.evaluations_semantic selects execute_all
// (the default: every item, in order), deny_on_first_deny or
// permit_on_first_permit (§7.1.2.1: the items up to the first deny, or
// permit). An item that cannot be evaluated (a missing field, a type the
// schema lacks) is a deny with context.error, and counts as a deny; a
// failure of the server (the datastore is down) fails the whole request.
//
// # Errors and authentication
//
// Errors of a whole request are HTTP statuses with an error message
// string as the body (§10.1.2): 400 for a body that is not a JSON object,
// a missing required field, a member of the wrong type, a Content-Type
// other than application/json, a bad page token; 401 for a missing or
// invalid "Authorization: Bearer <key>" (with WWW-Authenticate); 413 for
// a body over the limit; 500 for internal errors (the log has the cause);
// 503 when the datastore is unavailable or no schema is written. The
// X-Request-ID of a request is echoed on its response (§10.1.3). The
// metadata is served without a key: PEPs read it to find the endpoints.
//
// The handler calls Pemba only through package engine.
package authzen
