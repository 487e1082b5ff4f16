package pgstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// planData yields n relationships over many documents, users and groups.
func planData(n int) func(yield func(tuple.Relationship, error) bool) {
	return func(yield func(tuple.Relationship, error) bool) {
		for i := range n {
			r := tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i / 10)},
				Relation: []string{"viewer", "editor"}[i%2],
				Subject:  tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i % 997)},
			}
			if i%7 == 0 {
				r.Subject = tuple.SubjectRef{Type: "group", ID: fmt.Sprint(i % 101), Relation: "member"}
			}
			if i%10 == 3 {
				// Some grants expire, over a few hours.
				r.Expiration = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// TestQueryPlans demands that every query shape the evaluator, the write
// path, Watch and GC use is an index scan on a store large enough for the
// planner to prefer one, under the generic plan that prepared statements
// settle on. Run with -v to print the plans (docs/storage.md quotes them).
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	st, uri := openTest(t, Options{})
	if _, _, err := st.Import(ctx, store.WriteMeta{}, planData(50_000)); err != nil {
		t.Fatal(err)
	}
	// A second version of some keys, so that old versions exist.
	if _, _, err := st.Import(ctx, store.WriteMeta{}, planData(5_000)); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	// The staging table of an import, as Import creates it.
	if _, err := conn.Exec(ctx, `CREATE TEMPORARY TABLE pemba_import AS
		SELECT 0::bigint AS seq, resource_type, resource_id, relation, subject_type, subject_id, subject_relation,
			caveat_name, caveat_context::text, expires_ns
		FROM pemba_relationships LIMIT 100`); err != nil {
		t.Fatal(err)
	}
	now := int64(1 << 60)
	after := forwardValues(tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: "5"}, Relation: "viewer",
		Subject: tuple.SubjectRef{Type: "user", ID: "50"}})
	shapes := []struct {
		name string
		sql  string
		args []any
	}{
		{"check: point lookup (resource, relation, subject)",
			buildQuery(forwardCols, []cond{{"resource_type", "doc"}, {"resource_id", "42"}, {"relation", "viewer"},
				{"subject_type", "user"}, {"subject_id", "7"}, {"subject_relation", ""}}, true, false),
			[]any{int64(2), 1, "doc", "42", "viewer", "user", "7", "", now}},
		{"check/expand: subjects of (resource, relation)",
			buildQuery(forwardCols, []cond{{"resource_type", "doc"}, {"resource_id", "42"}, {"relation", "viewer"}}, true, false),
			[]any{int64(2), pageSize, "doc", "42", "viewer", now}},
		{"lookup resources: reverse (subject, resource type, relation)",
			buildQuery(reverseCols, []cond{{"subject_type", "user"}, {"subject_id", "7"}, {"subject_relation", ""},
				{"resource_type", "doc"}, {"relation", "viewer"}}, true, false),
			[]any{int64(2), pageSize, "user", "7", "", "doc", "viewer", now}},
		{"lookup resources: reverse, subject set of any relation",
			buildQuery(reverseCols, []cond{{"subject_type", "group"}, {"subject_id", "7"},
				{"resource_type", "doc"}, {"relation", "viewer"}}, true, false),
			[]any{int64(2), pageSize, "group", "7", "doc", "viewer", now}},
		{"read relationships: resource type, next page after a cursor",
			buildQuery(forwardCols, []cond{{"resource_type", "doc"}}, false, true),
			append([]any{int64(2), 100, "doc"}, after...)},
		{"write: close live versions", closeLive,
			[]any{int64(3), []string{"doc"}, []string{"1"}, []string{"viewer"}, []string{"user"}, []string{"1"}, []string{""}}},
		{"import: close live versions of 100 staged keys (no ANALYZE)", closeImported, []any{int64(3)}},
		{"watch: changes of a revision range", changesQuery, []any{int64(1), int64(2)}},
		{"gc: find dead versions",
			`SELECT ctid FROM pemba_relationships WHERE deleted_rev <= $1 AND deleted_rev <> 9223372036854775807 LIMIT 1000`,
			[]any{int64(2)}},
		{"gc: find expired live versions", deleteExpired, []any{int64(2), now}},
	}
	// Shapes that must use one index in particular: any other index scan
	// would read every version.
	wantIndex := map[string]string{deleteExpired: "pemba_relationships_expires"}
	var report strings.Builder
	for i, sh := range shapes {
		// EXPLAIN of a statement with bound parameters shows a custom
		// plan; a prepared statement under force_generic_plan shows the
		// plan that steady-state execution may settle on.
		name := fmt.Sprintf("shape%d", i)
		if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+sh.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: prepare: %v", sh.name, err)
		}
		params := make([]string, len(sh.args))
		for j, a := range sh.args {
			params[j] = literal(a)
		}
		rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) EXECUTE "+name+"("+strings.Join(params, ", ")+")")
		if err != nil {
			t.Fatalf("%s: %v", sh.name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", sh.name, err)
		}
		text := strings.Join(plan, "\n")
		fmt.Fprintf(&report, "-- %s\n%s\n\n", sh.name, text)
		if strings.Contains(text, "Seq Scan on pemba_relationships") || !strings.Contains(text, "Index") {
			t.Errorf("%s: not an index scan:\n%s", sh.name, text)
		}
		if want := wantIndex[sh.sql]; want != "" && !strings.Contains(text, want) {
			t.Errorf("%s: does not use %s:\n%s", sh.name, want, text)
		}
	}
	t.Log("\n" + report.String())
}

// literal renders a test argument as SQL (EXECUTE takes no parameters).
func literal(a any) string {
	switch a := a.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + strings.ReplaceAll(a, "'", "''") + "'"
	case []string:
		parts := make([]string, len(a))
		for i, s := range a {
			parts[i] = literal(s)
		}
		return "ARRAY[" + strings.Join(parts, ", ") + "]::text[]"
	}
	return fmt.Sprint(a)
}
