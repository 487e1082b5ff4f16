package schema

// This file defines the compiled form of a schema: what the evaluator walks.
// Names are resolved to pointers at compile time so that evaluation never
// re-parses or looks names up by string on its hot path, except for the
// per-subject-type target lookup of arrows.

// Schema is a checked, compiled schema. It is immutable once built and safe
// for concurrent use.
type Schema struct {
	// Definitions by object type name ("document", "tenant/document").
	Definitions map[string]*Definition
	// Caveats by name.
	Caveats map[string]*Caveat
	// Source is the text the schema was compiled from.
	Source string
	// NumRelations is the number of Relation values in the schema; every
	// Relation has a distinct Index in [0, NumRelations), usable as a dense
	// key in caches and visited-sets.
	NumRelations int
}

// Definition is one object type.
type Definition struct {
	Name string
	// Relations holds relations and permissions by name.
	Relations map[string]*Relation
	// Ordered lists them in source order.
	Ordered []*Relation
	Doc     string   // doc comment, if any
	Pos     Position // of the definition's name
	// Invariants are the write-time invariants declared in the
	// definition, in source order (see invariant.go).
	Invariants []*Invariant
	// RenamedFrom maps an old relation name to the relation that
	// declares "@renamed_from(old)": stored relationships under the old
	// name are read as the new relation's. Nil when there are none.
	RenamedFrom map[string]*Relation
}

// Relation is a relation (stored tuples) or a permission (computed).
type Relation struct {
	Name       string
	Definition *Definition
	// Index is dense across the whole schema (see Schema.NumRelations).
	Index int
	// IsPermission is true for "permission", false for "relation".
	IsPermission bool
	// Allowed lists the subject types a relation accepts; nil for permissions.
	Allowed []*AllowedSubject
	// Rewrite is the userset rewrite of a permission; nil for relations,
	// whose meaning is "the stored tuples" (Zanzibar's _this).
	Rewrite *Rewrite
	// TypeAnnotation lists the types of a permission's annotation
	// ("permission view: user | team = ..."), kept only under "use
	// typechecking", which checks it.
	TypeAnnotation []string
	Doc            string
	Pos            Position

	// Deprecated is set by "@deprecated" (with an optional message in
	// DeprecationMessage): writing the relation, or checking or looking
	// up the relation or permission, warns or is refused, as the server
	// is configured.
	Deprecated         bool
	DeprecationMessage string
	// RenamedFrom is the old name given by "@renamed_from(old)" on a
	// relation; "" when none.
	RenamedFrom string
}

// AllowedSubject is one entry of a relation's type list:
// user, group#member, user:*, user with caveat, user with expiration.
type AllowedSubject struct {
	Type     string
	Relation string // "" for a plain object; "member" for group#member
	Wildcard bool   // user:*
	// Caveat is the caveat that relationships of this subject type may (and
	// when set, must) carry; nil when none.
	Caveat *Caveat
	// Expiration reports "with expiration": such relationships may carry an
	// expiration time.
	Expiration bool
	// Target resolves Relation on Type (nil when Relation is "").
	Target *Relation
}

// RewriteKind is the node type of a rewrite tree.
type RewriteKind uint8

// Rewrite node kinds.
const (
	// RewriteNil is the empty set ("nil").
	RewriteNil RewriteKind = iota
	// RewriteComputed evaluates another relation or permission of the same
	// object (Zanzibar's computed_userset): "viewer".
	RewriteComputed
	// RewriteArrow follows the tupleset relation to each subject object and
	// evaluates Target there (tuple_to_userset): "parent->view".
	// With ArrowAll ("parent.all(view)") every subject must qualify.
	RewriteArrow
	// RewriteUnion: any child (a + b).
	RewriteUnion
	// RewriteIntersection: every child (a & b).
	RewriteIntersection
	// RewriteExclusion: the first child minus the second (a - b).
	RewriteExclusion
	// RewriteSelf is the object itself as a plain subject ("self", under
	// "use self"): user:tom is in the "self" of user:tom and of nothing
	// else; a subject set (user:tom#friend) never is.
	RewriteSelf
)

// Rewrite is a node of a permission's rewrite tree.
type Rewrite struct {
	Kind RewriteKind
	// Children of union, intersection (two or more) and exclusion (exactly two).
	Children []*Rewrite

	// Computed: the relation or permission evaluated on the same object.
	// Arrow: the tupleset relation whose subjects are followed.
	Relation *Relation

	// Arrow only: the name evaluated on each subject of Relation, and its
	// resolution per subject type (a type on which TargetName does not
	// exist is absent and contributes nothing).
	TargetName string
	// Targets is shared by every arrow over the same relation to the
	// same TargetName: read only.
	Targets  map[string]*Relation
	ArrowAll bool

	Pos Position
}

// Caveat is a compiled caveat: named, typed parameters and a CEL expression
// type-checked to bool.
type Caveat struct {
	Name       string
	Params     []CaveatParam
	Expression string
	Pos        Position

	// program holds the compiled CEL programs and parameter converters; see
	// Evaluate.
	program *caveatProgram // set by Compile
}

// CaveatParam is one declared parameter.
type CaveatParam struct {
	Name string
	Type string // as written, e.g. "int", "list<string>", "timestamp"
}

// CaveatResultKind says how a caveat evaluated.
type CaveatResultKind uint8

// Caveat outcomes.
const (
	CaveatFalse   CaveatResultKind = iota // the condition does not hold
	CaveatTrue                            // the condition holds
	CaveatMissing                         // parameters are missing; see Missing
)

// CaveatResult is the outcome of evaluating a caveat.
type CaveatResult struct {
	Kind CaveatResultKind
	// Missing lists, sorted, the parameters whose absence prevented a
	// decision (only when Kind is CaveatMissing).
	Missing []string
}
