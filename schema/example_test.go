package schema_test

import (
	"fmt"

	"github.com/pemba-authz/pemba/schema"
)

func ExampleCompile() {
	s, err := schema.Compile("example.zed", `
definition user {}

definition document {
	relation viewer: user | user:*
	permission view = viewer
}
`)
	if err != nil {
		fmt.Println(err)
		return
	}
	view := s.Definitions["document"].Relations["view"]
	fmt.Println(view.IsPermission, view.Rewrite.Relation.Name, s.NumRelations)
	// Output: true viewer 2
}

func ExampleCompile_errors() {
	_, err := schema.Compile("example.zed", `definition user {}

definition document {
	relation viewer: usr
	permission view = viewr
}
`)
	fmt.Println(err)
	// Output:
	// example.zed:4:19: unknown definition "usr" in the type list of relation "viewer"
	// example.zed:5:20: unknown relation "viewr" on definition "document"
}

func ExampleCaveat_Evaluate() {
	s, _ := schema.Compile("example.zed", `caveat weekday(day string, allowed list<string>) {
	day in allowed
}`)
	c := s.Caveats["weekday"]
	r, _ := c.Evaluate(map[string]any{"day": "mon", "allowed": []any{"mon", "tue"}})
	fmt.Println(r.Kind == schema.CaveatTrue)
	r, _ = c.Evaluate(map[string]any{"day": "mon"})
	fmt.Println(r.Kind == schema.CaveatMissing, r.Missing)
	// Output:
	// true
	// true [allowed]
}

func ExampleFormatSource() {
	out, _ := schema.FormatSource("example.zed", `definition user{}
definition doc{relation viewer:user|user:*;permission view=viewer+nil}`)
	fmt.Print(out)
	// Output:
	// definition user {}
	//
	// definition doc {
	// 	relation viewer: user | user:*
	// 	permission view = viewer + nil
	// }
}
