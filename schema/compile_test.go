package schema

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// validSchemas covers every construct of the language. Each entry must
// compile; want lists substrings of the compiled form's dump.
var validSchemas = []struct {
	name string
	src  string
	want []string
}{
	{"empty file", ``, []string{"relations 0"}},
	{"only comments", "// nothing\n/* here */", []string{"relations 0"}},
	{"empty definition", `definition user {}`, []string{"definition user"}},
	{"plain relation", "definition user {}\ndefinition doc { relation viewer: user }", []string{"relation viewer #0 doc=\"\": [user]"}},
	{"several types", "definition user {}\ndefinition team {}\ndefinition doc { relation viewer: user | team }", []string{"[user] [team]"}},
	{"wildcard", "definition user {}\ndefinition doc { relation viewer: user:* }", []string{"[user:*]"}},
	{"wildcard and plain", "definition user {}\ndefinition doc { relation viewer: user | user:* }", []string{"[user] [user:*]"}},
	{"subject relation", "definition user {}\ndefinition group { relation member: user | group#member }", []string{"[group#member ->group#member]"}},
	{"subject permission", "definition user {}\ndefinition group { relation m: user\n permission member = m }\ndefinition doc { relation viewer: group#member }", []string{"[group#member ->group#member]"}},
	{"caveated type", "definition user {}\ndefinition doc { relation viewer: user with c }\ncaveat c(a int) { a > 1 }", []string{"[user with c]", "caveat c(a int) \"a > 1\" compiled=true"}},
	{"expiration", "use expiration\ndefinition user {}\ndefinition doc { relation viewer: user with expiration }", []string{"[user with expiration]"}},
	{"expiration without use", "definition user {}\ndefinition doc { relation viewer: user with expiration }", []string{"[user with expiration]"}},
	{"caveat and expiration", "definition user {}\ndefinition doc { relation viewer: user with c and expiration }\ncaveat c(a bool) { a }", []string{"[user with c and expiration]"}},
	{"caveat on subject relation", "definition user {}\ndefinition group { relation member: user }\ndefinition doc { relation viewer: group#member with c }\ncaveat c(a bool) { a }", []string{"[group#member with c ->group#member]"}},
	{"computed", "definition user {}\ndefinition doc { relation viewer: user\n permission view = viewer }", []string{"permission view #1 doc=\"\" = viewer"}},
	{"union", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n permission p = a + b }", []string{"= (+ a b)"}},
	{"union flattened", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = a + (b + c) + a }", []string{"= (+ a b c a)"}},
	{"intersection", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n permission p = a & b }", []string{"= (& a b)"}},
	{"exclusion", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n permission p = a - b }", []string{"= (- a b)"}},
	{"exclusion left associative", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = a - b - c }", []string{"= (- (- a b) c)"}},
	{"union binds tighter than exclusion (SpiceDB)", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = a + b - c }", []string{"= (- (+ a b) c)"}},
	{"exclusion takes the whole union on its right (SpiceDB)", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = a - b + c }", []string{"= (- a (+ b c))"}},
	{"union binds tighter than intersection (SpiceDB)", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = a & b + c }", []string{"= (& a (+ b c))"}},
	{"intersection binds tighter than exclusion (SpiceDB)", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = a - b & c }", []string{"= (- a (& b c))"}},
	{"same operator is left-associative", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = a - b - c }", []string{"= (- (- a b) c)"}},
	{"parentheses override", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n relation c: user\n permission p = (a + b) - c }", []string{"= (- (+ a b) c)"}},
	{"nested parens", "definition user {}\ndefinition doc { relation a: user\n relation b: user\n permission p = ((a) & ((b + a)))}", []string{"= (& a (+ b a))"}},
	{"nil", "definition doc { permission p = nil }", []string{"= nil"}},
	{"nil in expression", "definition user {}\ndefinition doc { relation a: user\n permission p = a + nil }", []string{"= (+ a nil)"}},
	{"arrow", "definition user {}\ndefinition folder { relation viewer: user }\ndefinition doc { relation parent: folder\n permission view = parent->viewer }", []string{"= parent.any(viewer)[folder#viewer]"}},
	{"arrow recursive", "definition user {}\ndefinition folder { relation parent: folder\n relation viewer: user\n permission view = viewer + parent->view }", []string{"parent.any(view)[folder#view]"}},
	{"arrow any", "definition user {}\ndefinition folder { relation viewer: user }\ndefinition doc { relation parent: folder\n permission view = parent.any(viewer) }", []string{"parent.any(viewer)[folder#viewer]"}},
	{"arrow all", "definition user {}\ndefinition folder { relation viewer: user }\ndefinition doc { relation parent: folder\n permission view = parent.all(viewer) }", []string{"parent.all(viewer)[folder#viewer]"}},
	{"arrow over several types", "definition user {}\ndefinition folder { relation viewer: user }\ndefinition org { relation admin: user }\ndefinition doc { relation parent: folder | org\n permission view = parent->viewer }", []string{"parent.any(viewer)[folder#viewer]"}},
	{"arrow over subject relation type", "definition user {}\ndefinition group { relation member: user }\ndefinition doc { relation owners: group#member\n permission p = owners->member }", []string{"owners.any(member)[group#member]"}},
	{"arrow skips wildcard", "definition user { relation self: user }\ndefinition doc { relation v: user | user:*\n permission p = v->self }", []string{"v.any(self)[user#self]"}},
	{"prefixed types", "definition acme/user {}\ndefinition acme/doc { relation viewer: acme/user | acme/user:* }", []string{"definition acme/doc", "[acme/user] [acme/user:*]"}},
	{"prefixed subject relation", "definition t/user {}\ndefinition t/group { relation member: t/user | t/group#member }", []string{"[t/group#member ->t/group#member]"}},
	{"nested prefixes", "definition org/identity_team/user {}\ndefinition org/identity_team/group { relation member: org/identity_team/user | org/identity_team/group#member }", []string{"definition org/identity_team/group", "[org/identity_team/user] [org/identity_team/group#member ->org/identity_team/group#member]"}},
	{"longest names", "definition " + strings.Repeat("p", 63) + "/" + strings.Repeat("d", 64) + " {}", []string{"definition " + strings.Repeat("p", 63) + "/"}},
	{"prefixed caveat", "definition user {}\ndefinition doc { relation viewer: user with org/iam/on_vpn and expiration }\ncaveat org/iam/on_vpn(a bool) { a }", []string{"[user with org/iam/on_vpn and expiration]", "caveat org/iam/on_vpn(a bool)"}},
	{"self", "use self\ndefinition user { relation viewer: user\n permission view = viewer + self }", []string{"= (+ viewer self)"}},
	{"self alone", "use self\ndefinition user { permission me = self }", []string{"permission me #0 doc=\"\" = self"}},
	{"self is a name without use self", "definition user { relation self: user\n permission p = self }", []string{"relation self #0", "= self"}},
	{"typechecking complete", "use typechecking\ndefinition user {}\ndefinition team { relation member: user }\ndefinition doc { relation viewer: user | team#member\n relation org: team\n permission view: user = viewer + org->member }", []string{"= (+ viewer org.any(member)[team#member])"}},
	{"typechecking wildcard", "use typechecking\ndefinition user {}\ndefinition doc { relation viewer: user:*\n permission view: user = viewer }", []string{"[user:*]"}},
	{"annotation ignored without typechecking", "definition user {}\ndefinition bot {}\ndefinition doc { relation viewer: user | bot\n permission view: user = viewer }", []string{"= viewer"}},
	{"annotation of unknown type accepted", "use typechecking\ndefinition user {}\ndefinition doc { relation viewer: user\n permission view: user | ghost = viewer }", []string{"= viewer"}},
	{"partials", "use partial\npartial viewable { relation viewer: user\n permission view = viewer + edit }\ndefinition user {}\ndefinition doc { relation editor: user\n permission edit = editor\n ...viewable }", []string{"relation editor #0", "permission edit #1", "relation viewer #2", "permission view #3 doc=\"\" = (+ viewer edit)"}},
	{"nested partials", "use partial\npartial a { ...b\n relation x: user }\npartial b { relation y: user }\ndefinition user {}\ndefinition doc { ...a }\ndefinition folder { ...b }", []string{"definition doc", "relation y #0 doc=", "relation x #1 doc=", "definition folder", "relation y #2 doc="}},
	{"unreferenced partial ignored", "use partial\npartial a { relation x: nothing }\ndefinition user {}", []string{"relations 0"}},
	{"partial reference without use partial", "use partial\npartial a { relation x: user }\ndefinition user { ...a }", []string{"definition user", "relation x #0"}},
	{"import and partial words without use", "definition user { relation import: user\n relation partial: user }", []string{"relation import #0", "relation partial #1"}},
	{"ellipsis relation is the plain type", "definition user {}\ndefinition doc { relation viewer: user#... }", []string{"[user]"}},
	{"doc comments", "// The user.\ndefinition user {}\n/* Docs. */\ndefinition doc {\n\t// Who views.\n\trelation viewer: user\n}", []string{"definition user doc=\"The user.\"", "definition doc doc=\"Docs.\"", "relation viewer #0 doc=\"Who views.\""}},
	{"detached comment is not doc", "// Header.\n\ndefinition user {}", []string{"definition user doc=\"\""}},
	{"trailing comment is not doc", "definition user {} // about user\ndefinition doc {}", []string{"definition doc doc=\"\""}},
	{"semicolons", "definition user {}; definition doc { relation a: user; relation b: user; permission p = a + b; }", []string{"= (+ a b)"}},
	{"relation used before declared", "definition doc { permission p = a\n relation a: user }\ndefinition user {}", []string{"permission p #0", "relation a #1"}},
	{"keywords as contextual names", "definition user {}\ndefinition doc { relation with: user\n relation and: user\n relation expiration: user\n relation any: user\n relation use: user\n permission all = with + and + expiration + any + use }", []string{"(+ with and expiration any use)"}},
	{"caveat int", "caveat c(a int) { a > 1 }", []string{"caveat c(a int)"}},
	{"caveat uint", "caveat c(a uint) { a > 1u }", []string{"caveat c(a uint)"}},
	{"caveat bool", "caveat c(a bool) { a }", []string{"caveat c(a bool)"}},
	{"caveat string", "caveat c(a string) { a.startsWith(\"x\") }", []string{"caveat c(a string)"}},
	{"caveat double", "caveat c(a double) { a < 1.5 }", []string{"caveat c(a double)"}},
	{"caveat bytes", "caveat c(a bytes) { size(a) > 2 }", []string{"caveat c(a bytes)"}},
	{"caveat duration", "caveat c(a duration) { a < duration(\"1h\") }", []string{"caveat c(a duration)"}},
	{"caveat timestamp", "caveat c(now timestamp, exp timestamp) { now < exp }", []string{"caveat c(now timestamp, exp timestamp)"}},
	{"caveat list", "caveat c(a list<string>, b string) { b in a }", []string{"caveat c(a list<string>, b string)"}},
	{"caveat map", "caveat c(m map<int>) { m[\"x\"] > 1 }", []string{"caveat c(m map<int>)"}},
	{"caveat nested generic", "caveat c(m map<list<int>>) { size(m) > 0 }", []string{"caveat c(m map<list<int>>)"}},
	{"caveat ipaddress", "caveat c(ip ipaddress) { ip.in_cidr(\"10.0.0.0/8\") }", []string{"caveat c(ip ipaddress)"}},
	{"caveat any", "caveat c(a any) { a == 1 }", []string{"caveat c(a any)"}},
	{"caveat no params", "caveat c() { true }", []string{"caveat c() \"true\""}},
	{"caveat braces and strings in body", "caveat c(m map<string>) { m == {\"}\": '{'} || m[\"a\"] == \"}\" // }\n}", []string{"compiled=true"}},
	{"caveat raw strings with backslashes", "caveat c(s string, b bytes) { s != r\"\\\" && b != br\"\\\" && b != Br'}\\' }", []string{"compiled=true"}},
	{"caveat multi-line body", "caveat c(a int, b int) {\n  a > 1 &&\n  b < 2\n}", []string{"\"a > 1 &&\\n  b < 2\""}},
	{"caveat trailing comma", "caveat c(a int, b int,) { a < b }", []string{"caveat c(a int, b int)"}},
	{"enterprise-like mix", "definition user {}\ndefinition org { relation admin: user }\ndefinition doc {\n relation org: org\n relation banned: user\n relation viewer: user | user:*\n permission view = (viewer + org->admin) - banned\n}", []string{"= (- (+ viewer org.any(admin)[org#admin]) banned)"}},
}

func TestCompileValid(t *testing.T) {
	for _, tc := range validSchemas {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile("t.zed", tc.src)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			d := dump(s)
			for _, w := range tc.want {
				if !strings.Contains(d, w) {
					t.Errorf("compiled form lacks %q:\n%s", w, d)
				}
			}
			if strings.Contains(d, "INCONSISTENT") || strings.Contains(d, "compiled=false") {
				t.Errorf("inconsistent compiled form:\n%s", d)
			}
			checkRoundTrip(t, tc.src)
		})
	}
}

// invalidSchemas lists sources with the exact errors Compile must report,
// one "line:col: message" per line.
var invalidSchemas = []struct {
	name string
	src  string
	want string
}{
	// Syntax.
	{"missing colon", "definition doc {\n\trelation viewer user\n}", `2:18: expected ":", found "user"`},
	{"missing type", "definition doc {\n\trelation viewer:\n}", `3:1: expected subject type, found "}"`},
	{"missing brace", "definition doc \n\trelation viewer: user\n}", `2:2: expected "{", found keyword "relation"`},
	{"unclosed definition", "definition doc {\n\trelation viewer: user\n", `3:1: expected "}", found end of file`},
	{"unclosed before next definition", "definition doc {\n\trelation viewer: user\ndefinition user {}", `3:1: expected "}", found keyword "definition"`},
	{"garbage at top level", "relation x: user", `1:1: expected "definition", "caveat" or "use", found keyword "relation"`},
	{"garbage in definition", "definition doc {\n\tviewer: user\n}", `2:2: expected "relation" or "permission", found "viewer"`},
	{"missing operator", "definition doc {\n\tpermission p = a b\n}", `2:19: expected "+", "&", "-" or the end of the permission, found "b"`},
	{"missing operand", "definition doc {\n\tpermission p = a +\n}", `3:1: expected relation, permission, arrow, "nil" or "(", found "}"`},
	{"missing equals", "definition doc {\n\tpermission p a\n}", `2:15: expected "=", found "a"`},
	{"unclosed paren", "definition doc {\n\tpermission p = (a + b\n}", `3:1: expected ")", found "}"`},
	{"chained arrow", "definition doc {\n\tpermission p = a->b->c\n}", `2:21: arrows cannot be chained; point the arrow at a permission that follows the next relation`},
	{"bad arrow function", "definition doc {\n\tpermission p = a.some(b)\n}", `2:19: expected "any" or "all" after ".", found "some"`},
	{"wildcard without star", "definition doc {\n\trelation v: user:x\n}", `2:19: expected "*" after ":", found "x"`},
	{"with without caveat", "definition doc {\n\trelation v: user with\n}", `3:1: expected caveat name or "expiration" after "with", found "}"`},
	{"and without expiration", "definition doc {\n\trelation v: user with c and x\n}", `2:30: expected "expiration" after "and", found "x"`},
	{"type list junk", "definition doc {\n\trelation v: user + group\n}", `2:19: expected "|" or the end of the relation, found "+"`},
	{"name starting with digit", "definition 1doc {}", "1:12: unexpected \"1doc\": names must start with a letter"},
	{"invalid character", "definition doc { relation v: user $ }", `1:35: invalid character "$"`},
	{"unterminated comment", "definition doc {} /* never closed", `1:19: comment not terminated`},
	{"unterminated caveat", "caveat c(a int) { a > 1", "1:18: caveat expression not terminated by \"}\""},
	{"caveat missing type", "caveat c(a) { a }", `1:11: expected parameter type, found ")"`},
	{"caveat missing paren", "caveat c a int { a }", `1:10: expected "(", found "a"`},
	{"caveat unterminated string", "caveat c(a string) { a == \"x }", "1:27: string literal not terminated in caveat expression"},
	{"keyword as name", "definition nil {}", `1:12: expected definition name, found keyword "nil"`},
	{"too deeply nested", "definition doc {\n\tpermission p = " + strings.Repeat("(", 101) + "nil" + strings.Repeat(")", 101) + "\n}", `2:117: expression nested more than 100 levels deep`},
	{"too many operators", "definition doc {\n\trelation a: doc\n\tpermission p = a" + strings.Repeat(" + a", MaxOperators+1) + "\n\tpermission q = a\n}", `3:40019: permission has more than 10000 operators: split it into several permissions`},
	{"type too deeply nested", "caveat c(a " + strings.Repeat("list<", 101) + "int" + strings.Repeat(">", 101) + ") { true }", `1:516: type nested more than 100 levels deep`},
	{"several syntax errors", "definition a {\n\trelation x user\n}\ndefinition b {\n\tpermission y = (x\n}", "2:13: expected \":\", found \"user\"\n6:1: expected \")\", found \"}\""},

	// Names and resolution.
	{"unknown type", "definition doc {\n\trelation viewer: usr\n}", `2:19: unknown definition "usr" in the type list of relation "viewer"`},
	{"unknown relation", "definition user {}\ndefinition document {\n\trelation viewer: user\n\tpermission view = viewr\n}", `4:20: unknown relation "viewr" on definition "document"`},
	{"unknown subject relation", "definition group {}\ndefinition doc {\n\trelation viewer: group#member\n}", `3:25: unknown relation "member" on definition "group"`},
	{"unknown prefixed type", "definition t/user {}\ndefinition doc {\n\trelation viewer: u/user\n}", `3:19: unknown definition "u/user" in the type list of relation "viewer"`},
	{"unknown arrow left", "definition doc {\n\tpermission p = parent->view\n}", `2:17: unknown relation "parent" on definition "doc"`},
	{"arrow left is permission", "definition user {}\ndefinition doc {\n\trelation v: user\n\tpermission q = v\n\tpermission p = q->v\n}", `5:17: the left side of arrow q->v must be a relation, not permission "q"`},
	{"arrow target on no type", "definition user {}\ndefinition folder {}\ndefinition doc {\n\trelation parent: folder | user\n\tpermission p = parent->view\n}", `5:25: "view" is not a relation or permission on any subject type of "parent" (folder, user)`},
	{"arrow all target missing", "definition folder {}\ndefinition doc {\n\trelation parent: folder\n\tpermission p = parent.all(view)\n}", `4:28: "view" is not a relation or permission on any subject type of "parent" (folder)`},
	{"arrow over wildcard only", "definition user { relation x: user }\ndefinition doc {\n\trelation v: user:*\n\tpermission p = v->x\n}", `4:17: arrow v->x follows relation "v", which allows only wildcard subjects`},
	{"duplicate definition", "definition user {}\ndefinition user {}", `2:12: duplicate definition "user" (first declared at 1:12)`},
	{"duplicate relation", "definition user {}\ndefinition doc {\n\trelation v: user\n\trelation v: user\n}", `4:11: duplicate relation "v" on definition "doc" (first declared at 3:11)`},
	{"duplicate permission", "definition doc {\n\tpermission p = nil\n\tpermission p = nil\n}", `3:13: duplicate permission "p" on definition "doc" (first declared at 2:13)`},
	{"permission named like relation", "definition user {}\ndefinition doc {\n\trelation v: user\n\tpermission v = nil\n}", `4:13: permission "v" has the same name as the relation declared at 3:11 on definition "doc"`},
	{"duplicate caveat", "caveat c(a int) { a > 1 }\ncaveat c(a int) { a > 2 }", `2:8: duplicate caveat "c" (first declared at 1:8)`},
	{"duplicate param", "caveat c(a int, a string) { a > 1 }", `1:17: duplicate parameter "a" in caveat "c" (first declared at 1:10)`},
	{"duplicate subject type", "definition user {}\ndefinition doc {\n\trelation v: user | user\n}", `3:21: duplicate subject type "user" in relation "v"`},
	{"unknown caveat", "definition user {}\ndefinition doc {\n\trelation v: user with nocav\n}", `3:24: unknown caveat "nocav"`},
	{"wildcard with relation", "definition group { relation member: group }\ndefinition doc {\n\trelation v: group:*#member\n}", `3:22: wildcard subject group:* cannot have a relation (#member)`},
	{"self reference", "definition doc {\n\tpermission a = a\n}", `2:13: permission "a" refers to itself (a -> a); a permission cannot be defined in terms of itself`},
	{"mutual reference", "definition doc {\n\tpermission a = b\n\tpermission b = a\n}", `2:13: permission "a" refers to itself (a -> b -> a); a permission cannot be defined in terms of itself`},
	{"cycle through exclusion", "definition user {}\ndefinition doc {\n\trelation r: user\n\tpermission a = r - c\n\tpermission b = a & r\n\tpermission c = (b)\n}", `4:13: permission "a" refers to itself (a -> c -> b -> a); a permission cannot be defined in terms of itself`},
	{"uppercase name", "definition User {}", `1:12: invalid definition name "User": use lowercase letters, digits and "_", start with a letter, do not end with "_", at most 64 characters`},
	{"trailing underscore", "definition user_ {}", `1:12: invalid definition name "user_": use lowercase letters, digits and "_", start with a letter, do not end with "_", at most 64 characters`},
	{"bad relation name", "definition user {}\ndefinition doc { relation Viewer: user }", `2:27: invalid relation name "Viewer": use lowercase letters, digits and "_", start with a letter, do not end with "_", at most 64 characters`},
	{"prefix too long", "definition " + strings.Repeat("p", 64) + "/doc {}", `1:12: invalid prefix "` + strings.Repeat("p", 64) + `" of definition name "` + strings.Repeat("p", 64) + `/doc": use lowercase letters, digits and "_", start with a letter, do not end with "_", at most 63 characters`},
	{"type name too long", "definition " + strings.Repeat("ab/", 43) + "c {}", `1:12: definition name "` + strings.Repeat("ab/", 43) + `c" is longer than 128 characters`},
	{"bad middle prefix", "definition a/B/c {}", `1:14: invalid prefix "B" of definition name "a/B/c": use lowercase letters, digits and "_", start with a letter, do not end with "_", at most 63 characters`},
	{"empty last segment", "definition a/b/ {}", `1:17: expected type name after "/", found "{"`},
	{"bad caveat prefix", "caveat Org/c(a int) { a > 1 }", `1:8: invalid prefix "Org" of caveat name "Org/c": use lowercase letters, digits and "_", start with a letter, do not end with "_", at most 63 characters`},
	{"unknown prefixed caveat", "definition user {}\ndefinition doc {\n\trelation v: user with org/c\n}\ncaveat org/d(a int) { a > 1 }", `3:24: unknown caveat "org/c"`},
	{"use after definition", "definition user {}\nuse expiration", `2:1: "use" must come before every definition, caveat and partial`},
	{"self as relation after use self", "use self\ndefinition user { relation self: user }", `2:28: "self" is a keyword after "use self" and cannot name a relation`},
	{"self without use self", "definition user { permission p = self }", `1:34: unknown relation "self" on definition "user" (to mean the object itself, declare "use self" at the top of the file)`},
	{"self with arrow", "use self\ndefinition user { relation r: user\n permission p = self->r }", `3:21: expected "+", "&", "-" or the end of the permission, found "->"`},
	{"typechecking incomplete", "use typechecking\ndefinition user {}\ndefinition bot {}\ndefinition doc {\n\trelation viewer: user\n\trelation admin: bot\n\tpermission edit: user = viewer & admin\n}", `7:17: incomplete type annotation on permission "edit" of definition "doc": subject type "bot" is reachable but not listed (user)`},
	{"typechecking through arrow", "use typechecking\ndefinition user {}\ndefinition team {}\ndefinition org { relation member: user | team }\ndefinition doc {\n\trelation org: org\n\tpermission view: user = org->member\n}", `7:17: incomplete type annotation on permission "view" of definition "doc": subject type "team" is reachable but not listed (user)`},
	{"annotation missing type", "definition doc {\n\tpermission view: = nil\n}", `2:19: expected type name in the annotation, found "="`},
	{"partial without use", "partial a {}", `1:1: "partial" needs "use partial" at the top of the file`},
	{"import without use", "import \"a.zed\"", `1:1: "import" needs "use import" at the top of the file`},
	{"import in one text", "use import\nimport \"a.zed\"\ndefinition user {}", `2:1: import "a.zed" cannot be resolved in a schema given as one text: compile it from its file (pemba validate, pemba schema write FILE), which reads the imported files`},
	{"import without path", "use import\nimport a", `2:8: expected quoted file name after "import", found "a"`},
	{"unterminated import path", "use import\nimport \"a.zed", `2:8: string literal not terminated`},
	{"unknown partial", "use partial\ndefinition doc { ...nope }", `2:21: unknown partial "nope"`},
	{"partial reference to a definition", "definition user {}\ndefinition doc { ...user }", `2:21: unknown partial (only a partial can be referenced with "...") "user"`},
	{"partial cycle", "use partial\npartial a { ...b }\npartial b { ...a }\ndefinition doc { ...a }", `3:16: partial "a" includes itself (a -> b -> a)`},
	{"duplicate from partial", "use partial\npartial p { relation v: user }\ndefinition user {}\ndefinition doc {\n\trelation v: user\n\t...p\n}", `6:5: duplicate relation "v" (from partial "p") on definition "doc" (first declared at 5:11)`},
	{"partial used twice", "use partial\npartial p { relation v: user }\ndefinition user {}\ndefinition doc {\n\t...p\n\t...p\n}", `6:5: duplicate relation "v" (from partial "p") on definition "doc" (first declared at 2:22)`},
	{"duplicate partial", "use partial\npartial p {}\npartial p {}", `3:9: duplicate partial "p" (first declared at 2:9)`},
	{"definition named like partial", "use partial\npartial user {}\ndefinition user {}", `3:12: definition "user" has the same name as the partial declared at 2:9`},
	{"unknown feature", "use magic", `1:5: unknown feature "magic" after "use" (known: expiration, import, invariants, partial, self, typechecking)`},

	// Caveats.
	{"unknown param type", "caveat c(a integer) { a > 1 }", `1:12: unknown caveat parameter type "integer" (known: int, uint, bool, string, double, bytes, duration, timestamp, list<T>, map<T>, ipaddress, any)`},
	{"list without argument", "caveat c(a list) { size(a) > 1 }", `1:12: type list takes exactly one type argument, as in list<string>`},
	{"map with two arguments", "caveat c(a map<string, int>) { size(a) > 1 }", `1:12: type map takes exactly one type argument, as in map<string>`},
	{"scalar with argument", "caveat c(a int<string>) { a > 1 }", `1:16: type int takes no type arguments`},
	{"caveat not bool", "caveat c(a int) { a + 1 }", `1:19: caveat "c": the expression has type int; it must be bool`},
	{"caveat type error", "caveat c(a int) {\n\ta == \"x\"\n}", `2:4: caveat "c": found no matching overload for '_==_' applied to '(int, string)'`},
	{"caveat undeclared variable", "caveat c(a int) {\n\ta > 1 && b\n}", `2:11: caveat "c": undeclared reference to 'b'`},
	{"caveat syntax error", "caveat c(a int) { a > }", `1:23: caveat "c": Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`},
	{"caveat empty", "caveat c(a int) { }", `1:17: caveat "c" has an empty expression`},
	{"several semantic errors sorted", "definition doc {\n\trelation v: usr\n\tpermission p = w + v\n\tpermission q = x\n}", "2:14: unknown definition \"usr\" in the type list of relation \"v\"\n3:17: unknown relation \"w\" on definition \"doc\"\n4:17: unknown relation \"x\" on definition \"doc\""},
}

func TestCompileInvalid(t *testing.T) {
	for _, tc := range invalidSchemas {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile("", tc.src)
			if err == nil {
				t.Fatalf("Compile succeeded:\n%s", dump(s))
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			if !errors.Is(err, ErrInvalidSchema) {
				t.Errorf("errors.Is(err, ErrInvalidSchema) = false")
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("errors:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestErrorListRendersFileLineColumn(t *testing.T) {
	_, err := Compile("schema.zed", "definition user {}\ndefinition document {\n\trelation viewer: user\n\tpermission view = viewr\n}")
	want := `schema.zed:4:20: unknown relation "viewr" on definition "document"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestParseReturnsPartialTree(t *testing.T) {
	f, err := Parse("t.zed", "definition a {\n\trelation x user\n}\ndefinition b {\n\trelation y: a\n}")
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if len(f.Decls) != 2 {
		t.Fatalf("got %d declarations, want 2", len(f.Decls))
	}
	b := f.Decls[1].(*DefinitionDecl)
	if b.Name.String() != "b" || len(b.Members) != 1 {
		t.Errorf("second definition parsed as %q with %d members", b.Name.String(), len(b.Members))
	}
}

func TestNodePositions(t *testing.T) {
	src := "definition doc {\n\trelation parent: folder#x with c and expiration\n\tpermission p = (parent.all(v) + nil)\n}"
	f, err := Parse("t.zed", src)
	if err != nil {
		t.Fatal(err)
	}
	d := f.Decls[0].(*DefinitionDecl)
	tests := []struct {
		node Node
		text string
	}{
		{d, src},
		{d.Members[0], "relation parent: folder#x with c and expiration"},
		{d.Members[0].(*RelationDecl).Types[0], "folder#x with c and expiration"},
		{d.Members[1], "permission p = (parent.all(v) + nil)"},
		{d.Members[1].(*PermissionDecl).Expr, "(parent.all(v) + nil)"},
		{d.Members[1].(*PermissionDecl).Expr.(*ParenExpr).X.(*BinaryExpr).X, "parent.all(v)"},
		{d.Members[1].(*PermissionDecl).Expr.(*ParenExpr).X.(*BinaryExpr).Y, "nil"},
	}
	for _, tc := range tests {
		if got := src[tc.node.Pos()-1 : tc.node.End()-1]; got != tc.text {
			t.Errorf("%T spans %q, want %q", tc.node, got, tc.text)
		}
	}
}

func TestCompileEnterprise(t *testing.T) {
	s := mustCompileFile(t, "testdata/enterprise.zed")
	// Index is dense and distinct.
	seen := make([]bool, s.NumRelations)
	for _, d := range s.Definitions {
		for _, r := range d.Ordered {
			if r.Index < 0 || r.Index >= s.NumRelations || seen[r.Index] {
				t.Fatalf("bad or repeated index %d for %s#%s", r.Index, d.Name, r.Name)
			}
			seen[r.Index] = true
		}
	}
	use := s.Definitions["license"].Relations["use"].Rewrite
	if use.Kind != RewriteIntersection || !use.Children[1].ArrowAll {
		t.Errorf("license#use compiled as %s", dumpRewrite(use))
	}
	seat := s.Definitions["license"].Relations["seat"]
	if seat.Allowed[0].Caveat != s.Caveats["license_valid"] {
		t.Errorf("license#seat caveat not resolved to the schema's caveat")
	}
	if tgt := seat.Allowed[1].Target; tgt != s.Definitions["enterprise"].Relations["member"] {
		t.Errorf("enterprise#member target not resolved: %v", tgt)
	}
}

// TestDocExampleCompiles keeps the language overview in doc.go honest.
func TestDocExampleCompiles(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "// # Language overview"):
			in = true
		case in && strings.HasPrefix(line, "//\t"):
			src.WriteString(strings.TrimPrefix(line, "//\t") + "\n")
		case in && src.Len() > 0 && line == "//":
			src.WriteString("\n")
		case in && src.Len() > 0 && strings.HasPrefix(line, "// "):
			in = false
		}
	}
	if _, err := Compile("doc.go", src.String()); err != nil {
		t.Fatalf("doc example does not compile: %v\n%s", err, src.String())
	}
}

func TestCompileAnnotations(t *testing.T) {
	s, err := Compile("t.zed", `definition user {}
definition doc {
	@renamed_from(admin)
	@deprecated("use editor")
	relation owner: user
	relation editor: user
	@deprecated
	permission edit = owner + editor
	permission view = edit
}`)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Definitions["doc"]
	tests := []struct {
		name        string
		deprecated  bool
		msg, rename string
	}{
		{"owner", true, "use editor", "admin"},
		{"editor", false, "", ""},
		{"edit", true, "", ""},
		{"view", false, "", ""},
	}
	for _, tc := range tests {
		r := d.Relations[tc.name]
		if r.Deprecated != tc.deprecated || r.DeprecationMessage != tc.msg || r.RenamedFrom != tc.rename {
			t.Errorf("%s: deprecated=%t %q renamed_from=%q, want %t %q %q", tc.name, r.Deprecated, r.DeprecationMessage, r.RenamedFrom, tc.deprecated, tc.msg, tc.rename)
		}
	}
	if d.RenamedFrom["admin"] != d.Relations["owner"] || len(d.RenamedFrom) != 1 {
		t.Errorf("RenamedFrom = %v, want admin -> owner", d.RenamedFrom)
	}
	if got, want := d.Relations["owner"].DeprecationNotice(), "relation doc#owner is deprecated: use editor"; got != want {
		t.Errorf("notice %q, want %q", got, want)
	}
	if got, want := d.Relations["edit"].DeprecationNotice(), "permission doc#edit is deprecated"; got != want {
		t.Errorf("notice %q, want %q", got, want)
	}
}

// TestLongOperatorChains: a permission of MaxOperators operators compiles,
// and a chain of 1.4M (about 5.6 MB, once a stack overflow that took the
// server down) is refused with a positioned error, without recursing
// through it.
func TestLongOperatorChains(t *testing.T) {
	chain := func(n int) string {
		var b strings.Builder
		b.WriteString("definition user {}\ndefinition doc {\n\trelation a: user\n\trelation b: user\n\tpermission p = a")
		for i := range n {
			b.WriteString([]string{" - b", " + a"}[i%2])
		}
		b.WriteString("\n}\n")
		return b.String()
	}
	if _, err := Compile("ok.zed", chain(MaxOperators)); err != nil {
		t.Errorf("%d operators: %v", MaxOperators, err)
	}
	_, err := Compile("long.zed", chain(1_400_000))
	if err == nil || !strings.Contains(err.Error(), "long.zed:5:") || !strings.Contains(err.Error(), "more than 10000 operators") {
		t.Errorf("1.4M operators: %v", err)
	}
}
