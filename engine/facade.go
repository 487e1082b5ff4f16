package engine

import (
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/token"
)

// The vocabulary of the engine's requests and answers that is defined by
// the packages below it. These are aliases, not copies: the evaluator and
// the store own the types (moving them here would make those packages
// import the engine), and a caller above the engine names them through
// the engine, so that it needs no other Pemba package than engine,
// engine/tuple and schema (layout_test.go enforces that).

// Answers.
type (
	// Permissionship is the answer to a check: NoPermission,
	// HasPermission or ConditionalPermission.
	Permissionship = eval.Permissionship
	// CheckResult is the outcome of one check (embedded in CheckResponse
	// and BulkCheckResult).
	CheckResult = eval.CheckResult
	// Tree is an expansion of a relation or permission on one object, the
	// answer of Expand.
	Tree = eval.Tree
	// TreeKind is the node type of a Tree: Leaf, Union, Intersection or
	// Exclusion.
	TreeKind = eval.TreeKind
	// TreeSubject is one stored subject of a Leaf, with its conditions.
	TreeSubject = eval.Subject
)

// Permissionship values.
const (
	NoPermission          = eval.NoPermission
	HasPermission         = eval.HasPermission
	ConditionalPermission = eval.ConditionalPermission
)

// Tree kinds.
const (
	Leaf         = eval.Leaf
	Union        = eval.Union
	Intersection = eval.Intersection
	Exclusion    = eval.Exclusion
)

// Writes and changes.
type (
	// Op is what an Update or a Change does to a relationship: OpTouch,
	// OpCreate or OpDelete.
	Op = store.Op
	// ChangeSet is everything one transaction changed (embedded in
	// WatchEvent).
	ChangeSet = store.ChangeSet
	// Change is one relationship change inside a ChangeSet.
	Change = store.Change
	// Revision numbers the store's transactions. Callers see revisions
	// as zookies; a dispatched subproblem carries one in the clear.
	Revision = store.Revision
)

// Update operations.
const (
	OpTouch  = store.OpTouch
	OpCreate = store.OpCreate
	OpDelete = store.OpDelete
)

// Cluster dispatch: the types a node's router and the dispatch service
// exchange (see DispatchCheck and Options.Router).
type (
	// Router decides which node owns a permission subproblem.
	Router = eval.Router
	// Peer evaluates subproblems dispatched to another node.
	Peer = eval.Peer
	// DispatchRequest is one subproblem sent to its owner.
	DispatchRequest = eval.DispatchRequest
	// DispatchResponse is the answer to a DispatchRequest.
	DispatchResponse = eval.DispatchResponse
	// PathStep is one subproblem on the path to a dispatched one.
	PathStep = eval.PathStep
	// Fingerprint identifies a datastore in zookies, cursors and
	// dispatched requests; nodes of one cluster share it.
	Fingerprint = token.Fingerprint
)

// MaxCursorLen bounds the text of a paging cursor the engine accepts.
const MaxCursorLen = token.MaxCursorLen

// FingerprintOf returns the fingerprint of st, the one an engine over st
// reports (Engine.Fingerprint): a router built before the engine needs it.
func FingerprintOf(st Store) Fingerprint { return token.FingerprintOf(st.Kind(), st.ID()) }

// The evaluator's questions, which the engine's requests embed with the
// consistency and caveat context they need (the embedded field keeps the
// evaluator's type name: engine.LookupResourcesRequest{
// LookupResourcesRequest: engine.LookupResourcesQuery{...}}).
type (
	// CheckQuery asks whether a subject has a permission on a resource.
	CheckQuery = eval.CheckRequest
	// ExpandQuery asks for the tree of subjects behind a permission.
	ExpandQuery = eval.ExpandRequest
	// LookupResourcesQuery asks which resources of a type a subject has a
	// permission on.
	LookupResourcesQuery = eval.LookupResourcesRequest
	// LookupSubjectsQuery asks which subjects of a type have a permission
	// on a resource.
	LookupSubjectsQuery = eval.LookupSubjectsRequest
)
