package schema

import "strconv"

// Token is a lexical token of the schema language.
type Token int

// Tokens. Words that only have meaning in one place (use, with, and,
// expiration, any, all) are scanned as IDENT and recognised by the parser, so they stay
// usable as names; so are self, import and partial, which the parser
// recognises only in a file that declares "use self", "use import" or "use
// partial" (as SpiceDB's lexer does).
const (
	ILLEGAL Token = iota
	EOF
	COMMENT

	IDENT  // document
	STRING // "other.zed"

	LBRACE    // {
	RBRACE    // }
	LPAREN    // (
	RPAREN    // )
	LT        // <
	GT        // >
	COLON     // :
	SEMICOLON // ;
	COMMA     // ,
	HASH      // #
	PIPE      // |
	STAR      // *
	SLASH     // /
	DOT       // .
	ASSIGN    // =
	PLUS      // +
	AMP       // &
	MINUS     // -
	ARROW     // ->
	ELLIPSIS  // ...
	AT        // @

	keywordBeg
	DEFINITION // definition
	CAVEAT     // caveat
	RELATION   // relation
	PERMISSION // permission
	NIL        // nil
	keywordEnd
)

var tokens = [...]string{
	ILLEGAL:    "ILLEGAL",
	EOF:        "EOF",
	COMMENT:    "COMMENT",
	IDENT:      "IDENT",
	STRING:     "STRING",
	LBRACE:     "{",
	RBRACE:     "}",
	LPAREN:     "(",
	RPAREN:     ")",
	LT:         "<",
	GT:         ">",
	COLON:      ":",
	SEMICOLON:  ";",
	COMMA:      ",",
	HASH:       "#",
	PIPE:       "|",
	STAR:       "*",
	SLASH:      "/",
	DOT:        ".",
	ASSIGN:     "=",
	PLUS:       "+",
	AMP:        "&",
	MINUS:      "-",
	ARROW:      "->",
	ELLIPSIS:   "...",
	AT:         "@",
	DEFINITION: "definition",
	CAVEAT:     "caveat",
	RELATION:   "relation",
	PERMISSION: "permission",
	NIL:        "nil",
}

// String returns the token's text for operators and keywords, its name
// otherwise.
func (t Token) String() string {
	if t >= 0 && int(t) < len(tokens) && tokens[t] != "" {
		return tokens[t]
	}
	return "token(" + strconv.Itoa(int(t)) + ")"
}

// IsKeyword reports whether t is a reserved word.
func (t Token) IsKeyword() bool { return keywordBeg < t && t < keywordEnd }

// lookupKeyword maps an identifier to its keyword token, or IDENT.
func lookupKeyword(s string) Token {
	switch s {
	case "definition":
		return DEFINITION
	case "caveat":
		return CAVEAT
	case "relation":
		return RELATION
	case "permission":
		return PERMISSION
	case "nil":
		return NIL
	}
	return IDENT
}

// Binary operator precedence, SpiceDB's (checked against its validator):
// union binds tightest, then intersection, then exclusion; all are
// left-associative. Matching it matters: "viewer + editor - banned" must
// exclude banned viewers, as it does in SpiceDB.
func (t Token) precedence() int {
	switch t {
	case PLUS:
		return 3
	case AMP:
		return 2
	case MINUS:
		return 1
	}
	return 0
}
