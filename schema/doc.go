// Package schema reads Pemba's schema language, a dialect of SpiceDB's: it
// scans, parses, checks and compiles schema text into the form the
// evaluator walks (see compiled.go), formats it canonically, evaluates
// caveats, and diffs two compiled schemas.
//
// It imports no other Pemba package. The only dependency outside the
// standard library is cel-go, for caveat expressions.
//
// The front end is shaped like Go's own: a Scanner with positions and an
// error callback (scanner.go), a syntax tree whose nodes report Pos and End
// (ast.go), a recursive-descent parser that resynchronises after an error
// and reports every error (parser.go), a checker that resolves names and
// builds the compiled form (check.go, caveat.go, caveattype.go), a
// printer (format.go) and a differ (diff.go).
//
// # Language overview
//
// A schema declares object types with "definition", conditions with
// "caveat", and may opt into features with "use":
//
//	use expiration
//
//	// Doc comments directly above a declaration are kept.
//	definition user {}
//
//	definition tenant/group {
//		relation member: user | tenant/group#member
//	}
//
//	definition document {
//		relation parent: document
//		relation viewer: user | user:* | tenant/group#member with expiration
//		relation editor: user with on_vpn | user with on_vpn and expiration
//		relation banned: user
//
//		permission edit = editor + parent->edit
//		permission view = (viewer + edit + parent.any(view)) - banned
//		permission audit = parent.all(view) & nil
//	}
//
//	caveat on_vpn(ip ipaddress, cidrs list<string>) {
//		cidrs.exists(c, ip.in_cidr(c))
//	}
//
// Names are lowercase letters, digits and "_", start with a letter, do not
// end with "_" and have at most 64 characters; object type and caveat names
// may carry prefixes ("tenant/group", "org/identity_team/group"). Package
// names holds these rules for every layer. A relation lists the subject types it accepts:
// a type ("user"), a set of subjects ("group#member", where member is a
// relation or permission of group), every object of a type ("user:*"), and
// any of these "with" a caveat, "with expiration", or "with caveat and
// expiration". The words use, with, and, expiration, any and all are
// recognised only where they have meaning and remain usable as names;
// definition, caveat, relation, permission and nil are reserved.
//
// A permission is an expression over relations and permissions of the same
// object: "a + b" (union), "a & b" (intersection), "a - b" (exclusion),
// "nil" (the empty set), parentheses, and arrows: "parent->view" (and its
// synonym "parent.any(view)") is the union of view over the objects of the
// relation parent, "parent.all(view)" requires every one of them to grant
// view. An arrow's left side must be a relation (not a permission); its
// right side must exist on at least one of that relation's subject types,
// and types lacking it contribute nothing.
//
// Operator precedence is SpiceDB's: union binds tightest, then
// intersection, then exclusion, and each is left-associative, so
// "a + b & c - d" means "((a + b) & c) - d", "a - b + c" means
// "a - (b + c)" and "a - b - c" means "(a - b) - c". The formatter keeps
// parentheses where they change the meaning.
//
// A caveat declares typed parameters and a CEL expression that must
// type-check to bool. Parameter types are int, uint, bool, string, double,
// bytes, duration, timestamp, list<T>, map<T> (string keys), ipaddress and
// any. An ipaddress is a string to CEL, validated on input, with the member
// function ip.in_cidr("10.0.0.0/8"). The expression is everything between
// the braces, so it may span lines and hold CEL comments.
//
// Statements end at the next keyword; newlines are not significant and
// semicolons are optional separators.
//
// Current SpiceDB features are read too: "use self" makes self (the object
// itself, as a subject) an operand; "use typechecking" checks permission
// type annotations ("permission view: user | team = ..."); "use partial"
// allows "partial name { members }", copied into definitions with
// "...name"; and "use import" allows import "file.zed", resolved by
// LoadFiles and CompileFiles (files.go), never by Compile, which reads one
// text.
//
// # Errors
//
// Parse, Compile and FormatSource return an ErrorList: every error found,
// sorted by position, one per line as
//
//	schema.zed:4:20: unknown relation "viewr" on definition "document"
//
// The parser keeps only the first syntax error of each line (later ones
// are usually its consequences) and resynchronises at the next relation,
// permission or declaration. Semantic checks run only on a source that
// parses; they report undefined types, relations, permissions and caveats,
// misuse of arrows, duplicate names, wildcards with a relation,
// permissions defined in terms of themselves through other permissions,
// invalid parameter types and caveat expressions that do not type-check to
// bool (with CEL's message at the offending place in the expression).
// errors.Is(err, ErrInvalidSchema) holds for any such list.
//
// Caveat.Evaluate returns a *CaveatParamError (errors.Is ErrCaveatParam)
// when a context value cannot be converted to its parameter's type, and an
// error wrapping ErrCaveatEval when the expression fails at run time.
//
// # Compiled form
//
// Compile returns a *Schema: definitions and caveats by name, each
// definition's relations and permissions by name and in source order. Every
// Relation has a dense Index in [0, Schema.NumRelations) for use as an
// array key. A relation's Allowed entries carry the resolved target
// relation of "group#member" and a pointer to the caveat; a permission's
// Rewrite is a tree of nil, computed (another relation of the same
// object), arrow (with its target resolved per subject type), union,
// intersection and exclusion nodes, where nested unions and intersections
// are flattened into one n-ary node. Caveats hold CEL programs compiled
// once, at Compile time; Evaluate is safe for concurrent use and does no
// parsing or type-checking.
//
// Format prints a File canonically; formatting is idempotent and the
// result compiles to the same Schema. Diff lists what changed between two
// schemas, including each relation and each allowed subject type removed,
// so a caller can count the stored relationships a change would strand.
package schema
