package eval

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// render prints a tree compactly: kind[object#relation: subjects](children).
func render(t *Tree) string {
	var b strings.Builder
	var walk func(t *Tree)
	walk = func(t *Tree) {
		fmt.Fprintf(&b, "%s[%s#%s", t.Kind, t.Object, t.Relation)
		if t.Truncated {
			b.WriteString(" ...")
		}
		for i, s := range t.Subjects {
			if i == 0 {
				b.WriteString(":")
			}
			b.WriteString(" " + s.Subject.String())
			if s.Caveat != nil {
				b.WriteString("[" + s.Caveat.Name + "]")
			}
		}
		b.WriteString("]")
		if len(t.Children) > 0 {
			b.WriteString("(")
			for i, c := range t.Children {
				if i > 0 {
					b.WriteString(", ")
				}
				walk(c)
			}
			b.WriteString(")")
		}
	}
	walk(t)
	return b.String()
}

func TestExpand(t *testing.T) {
	s := mustCompile(t, constructsSchema)
	rd := load(t, mustParse(t, constructsData...))
	tests := []struct {
		name  string
		obj   string
		perm  string
		depth int
		want  string
	}{
		{"relation with cycle", "group:eng", "member", 0,
			"leaf[group:eng#member: group:backend#member user:anne](leaf[group:backend#member: group:eng#member user:bob](leaf[group:eng#member ...]))"},
		{"one level", "group:eng", "member", 1,
			"leaf[group:eng#member: group:backend#member user:anne]"},
		{"exclusion", "group:all", "allowed", 0,
			"exclusion[group:all#allowed](leaf[group:all#member: user:*], leaf[group:all#banned: user:eve])"},
		{"computed only", "doc:1", "edit", 0,
			"union[doc:1#edit](leaf[doc:1#editor: user:jack])"},
		{"arrow", "folder:sub", "view", 2,
			"union[folder:sub#view](leaf[folder:sub#viewer], leaf[folder:sub#owner], union[folder:sub#view: folder:root](union[folder:root#view](leaf[folder:root#viewer ...], leaf[folder:root#owner ...], union[folder:root#view])))"},
		{"caveat shown", "doc:3", "viewer", 1,
			"leaf[doc:3#viewer: user:carl[flag]]"},
		{"expired hidden", "doc:4", "viewer", 0,
			"leaf[doc:4#viewer]"},
	}
	e := New(s, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := e.Expand(context.Background(), Params{Reader: rd, Now: testNow}, mustObject(t, tt.obj), tt.perm, tt.depth)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(tree); got != tt.want {
				t.Fatalf("Expand =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
