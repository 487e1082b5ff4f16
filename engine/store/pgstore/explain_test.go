package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// sqlStart matches the beginning of an SQL statement.
var sqlStart = regexp.MustCompile(`^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|BEGIN|COMMIT|ROLLBACK|LISTEN|SET|CREATE|ALTER|DROP|ANALYZE|TRUNCATE|VALUES)\b`)

// plannedStart matches a statement the planner plans (EXPLAIN takes it).
var plannedStart = regexp.MustCompile(`^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES)\b`)

// packageStatements returns the package's SQL statements: its
// package-level string constants that hold SQL, by name. It fails the
// test on SQL text anywhere else in the package's (non-test) source, so
// that a new statement cannot escape TestStatementsRegistered and
// TestStatementPlans: a string literal in a function body that starts
// like SQL (except BEGIN, COMMIT and ROLLBACK, and buildQuery's
// fragments, whose scans TestStatementPlans runs through the reader),
// or in a package-level variable (except the migrations' DDL).
func packageStatements(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	consts := map[string]ast.Expr{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				vs, ok := spec.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, name := range vs.Names {
					switch {
					case gd.Tok == token.CONST && i < len(vs.Values):
						consts[name.Name] = vs.Values[i]
					case gd.Tok == token.VAR && name.Name != "migrations":
						ast.Inspect(vs, func(n ast.Node) bool {
							if s, ok := stringLit(n); ok && sqlStart.MatchString(s) {
								t.Errorf("%s: SQL in package-level variable %s: make it a constant", fset.Position(n.Pos()), name.Name)
							}
							return true
						})
					}
				}
			}
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || fd.Name.Name == "buildQuery" {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				s, ok := stringLit(n)
				if !ok || !sqlStart.MatchString(s) || s == "BEGIN" || s == "COMMIT" || s == "ROLLBACK" {
					return true
				}
				t.Errorf("%s: SQL text in %s: make it a package-level constant (explain_test.go plans every one)", fset.Position(n.Pos()), fd.Name.Name)
				return true
			})
		}
	}
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			return stringLit(e)
		case *ast.ParenExpr:
			return eval(e.X)
		case *ast.Ident:
			if v, ok := consts[e.Name]; ok {
				return eval(v)
			}
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				x, ok1 := eval(e.X)
				y, ok2 := eval(e.Y)
				return x + y, ok1 && ok2
			}
		}
		return "", false
	}
	out := map[string]string{}
	for name, e := range consts {
		if s, ok := eval(e); ok && sqlStart.MatchString(s) {
			out[name] = s
		}
	}
	return out
}

// stringLit returns the value of a string literal node.
func stringLit(n ast.Node) (string, bool) {
	lit, ok := n.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// planEnv holds the values that statementArgs draws representative
// arguments from: a loaded store's head revision, the current time, a
// live key, a transaction id.
type planEnv struct {
	head, now int64
	key       tuple.Key
	xid       string
}

// statementArgs gives every planned SQL constant of the package its
// arguments, as SQL expressions for EXECUTE. TestStatementsRegistered
// fails on a planned constant missing here.
var statementArgs = map[string]func(p planEnv) []string{
	"selectStoreID":    none,
	"selectHorizon":    none,
	"selectHead":       none,
	"selectVersion":    none,
	"auditBoundsQuery": none,
	"lockAuditAnchor":  none,
	"allocateSQL":      none,
	"syncBarrier":      none,
	"changelogQuery":   func(p planEnv) []string { return ints(p.head-100, watchBatch) },
	"changesQuery":     func(p planEnv) []string { return ints(p.head-watchBatch, p.head) },
	"readSchemaQuery":  func(p planEnv) []string { return ints(p.head) },
	"xactStatusSQL":    func(p planEnv) []string { return []string{lit(p.xid), fmt.Sprint(p.head), hash32} },
	"terminateSQL":     func(p planEnv) []string { return []string{"0", lit(p.xid)} }, // pid 0 matches nothing
	"insertChangelog": func(p planEnv) []string {
		return []string{fmt.Sprint(p.head + 1000), fmt.Sprint(p.now), lit("svc"), "false"}
	},
	"insertSchema":    func(p planEnv) []string { return []string{fmt.Sprint(p.head + 1000), lit("definition user {}")} },
	"updateCommitted": func(p planEnv) []string { return []string{fmt.Sprint(p.now), hash32} },
	"notifySQL":       func(p planEnv) []string { return []string{lit("1")} },
	"closeLive": func(p planEnv) []string {
		return append(ints(p.head+1000), keyArrays1(p.key)...)
	},
	"liveKeys": func(p planEnv) []string { return keyArrays1(p.key) },
	"insertVersions": func(p planEnv) []string {
		return append(append(ints(p.head+1000), keyArrays1(p.key)...),
			"ARRAY[1]::int2[]", "ARRAY[NULL]::text[]", "ARRAY[NULL]::text[]", "ARRAY[NULL]::int8[]")
	},
	"insertAudit": func(p planEnv) []string {
		return []string{fmt.Sprint(p.head + 1000), fmt.Sprint(p.now), lit("svc"), `'\x00'::bytea`, hash32}
	},
	"auditEntriesQuery": func(p planEnv) []string {
		return []string{"-1", fmt.Sprint(p.head), fmt.Sprint(int64(-1 << 63)), fmt.Sprint(int64(1<<63 - 1)), lit("")}
	},
	"auditChainQuery":   func(p planEnv) []string { return ints(-1, p.head) },
	"lastPrunable":      func(p planEnv) []string { return ints(0, p.now) },
	"deleteAudit":       func(p planEnv) []string { return ints(p.head / 2) },
	"moveAuditAnchor":   func(p planEnv) []string { return []string{fmt.Sprint(p.head / 2), hash32} },
	"gcFindHorizon":     func(p planEnv) []string { return ints(p.now - int64(time.Hour)) },
	"gcRaiseHorizon":    func(p planEnv) []string { return ints(0) },
	"deleteDead":        func(p planEnv) []string { return ints(p.head / 2) },
	"deleteChangelog":   func(p planEnv) []string { return ints(p.head / 2) },
	"deleteExpired":     func(p planEnv) []string { return ints(p.head, p.now) },
	"deleteOldSchemas":  func(p planEnv) []string { return ints(p.head) },
	"migrateLock":       func(p planEnv) []string { return ints(migrateLockKey) },
	"recordVersion":     func(p planEnv) []string { return ints(int64(SchemaVersion())) },
	"closeImported":     func(p planEnv) []string { return ints(p.head + 1000) },
	"insertImported":    func(p planEnv) []string { return ints(p.head+1000, int64(store.OpTouch)) },
	"countResourcesSQL": func(p planEnv) []string { return ints(p.head, p.now) },
	"countSubjectsSQL":  func(p planEnv) []string { return ints(p.head, p.now) },
	"readRelationshipSQL": func(p planEnv) []string {
		return append(append(ints(p.head), keyLiterals(p.key)...), fmt.Sprint(p.now))
	},
}

// keyLiterals is a key's six values in forward order, as literals.
func keyLiterals(k tuple.Key) []string {
	var out []string
	for _, v := range forwardValues(k) {
		out = append(out, literal(v))
	}
	return out
}

// notPlanned are the SQL constants that the planner does not plan:
// LISTEN, settings and DDL.
var notPlanned = []string{"listenSQL", "importWorkMem", "createImportTable", "createVersionTable", "analyzeOneRowTables"}

const hash32 = `'\x0000000000000000000000000000000000000000000000000000000000000000'::bytea`

func none(planEnv) []string { return nil }

func ints(v ...int64) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = strconv.FormatInt(x, 10)
	}
	return out
}

func lit(s string) string { return literal(s) }

// keyArrays1 is one key as the six text[] arguments of an unnest.
func keyArrays1(k tuple.Key) []string {
	var out []string
	for _, v := range forwardValues(k) {
		out = append(out, literal([]string{v.(string)}))
	}
	return out
}

// TestStatementsRegistered checks, without a database, that every SQL
// statement in the package is a constant that TestStatementPlans plans
// (statementArgs) or knowingly does not (notPlanned), and that the
// page sizes written into the SQL match their Go constants.
func TestStatementsRegistered(t *testing.T) {
	stmts := packageStatements(t)
	for name, sql := range stmts {
		_, hasArgs := statementArgs[name]
		skip := slices.Contains(notPlanned, name)
		switch planned := plannedStart.MatchString(sql); {
		case planned && !hasArgs:
			t.Errorf("statement %s has no arguments in statementArgs: add representative ones so that TestStatementPlans plans it", name)
		case !planned && !skip:
			t.Errorf("statement %s is not a planned statement: add it to notPlanned", name)
		case skip && planned:
			t.Errorf("statement %s is listed in notPlanned but the planner plans it", name)
		}
	}
	for name := range statementArgs {
		if _, ok := stmts[name]; !ok {
			t.Errorf("statementArgs names %s, which is no SQL constant of the package", name)
		}
	}
	for _, name := range notPlanned {
		if _, ok := stmts[name]; !ok {
			t.Errorf("notPlanned names %s, which is no SQL constant of the package", name)
		}
	}
	for _, c := range []struct {
		names []string
		limit int
	}{
		{[]string{"deleteDead", "deleteChangelog", "deleteExpired"}, gcBatch},
		{[]string{"auditEntriesQuery", "auditChainQuery"}, auditPage},
	} {
		for _, name := range c.names {
			if !strings.Contains(stmts[name], "LIMIT "+strconv.Itoa(c.limit)+")") && !strings.HasSuffix(stmts[name], "LIMIT "+strconv.Itoa(c.limit)) {
				t.Errorf("%s does not end its page with LIMIT %d:\n%s", name, c.limit, stmts[name])
			}
		}
	}
}

// Plan bounds of TestStatementPlans. A plan passes when every node's
// estimated rows are within maxRowsFactor of the rows it returned
// (misestimates), or when its total cost is below cheapCost, where a
// misestimate cannot matter; and JIT never triggers (the total cost stays
// below jit_above_cost, 100,000 by default).
const (
	maxRowsFactor = 100
	cheapCost     = 10_000
)

// explainNode is the part of EXPLAIN (ANALYZE, FORMAT JSON)'s plan node
// that the checks read.
type explainNode struct {
	NodeType    string        `json:"Node Type"`
	Relation    string        `json:"Relation Name"`
	TotalCost   float64       `json:"Total Cost"`
	PlanRows    float64       `json:"Plan Rows"`
	ActualRows  float64       `json:"Actual Rows"`
	ActualLoops float64       `json:"Actual Loops"`
	Plans       []explainNode `json:"Plans"`
}

type explainOutput struct {
	Plan explainNode    `json:"Plan"`
	JIT  map[string]any `json:"JIT"`
}

// planVerdict is one statement's plan under one plan_cache_mode.
type planVerdict struct {
	cost, estRows, actualRows float64
	jit                       bool
	problems                  []string
}

// explainStatement prepares sql on conn and runs EXPLAIN (ANALYZE,
// FORMAT JSON) EXECUTE with args in a transaction that it rolls back,
// under plan_cache_mode mode, with JIT on at the server's cost
// thresholds.
func explainStatement(ctx context.Context, conn *pgx.Conn, name, sql string, args []string, mode string, jitAbove float64) (planVerdict, error) {
	var v planVerdict
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		return v, err
	}
	defer conn.Exec(ctx, "ROLLBACK")
	for _, set := range []string{"SET LOCAL jit = on", "SET LOCAL plan_cache_mode = " + mode} {
		if _, err := conn.Exec(ctx, set); err != nil {
			return v, err
		}
	}
	if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		return v, fmt.Errorf("prepare: %w", err)
	}
	defer conn.Exec(ctx, "DEALLOCATE "+name)
	exec := "EXECUTE " + name
	if len(args) > 0 {
		exec += "(" + strings.Join(args, ", ") + ")"
	}
	var raw []byte
	if err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+exec, pgx.QueryExecModeSimpleProtocol).Scan(&raw); err != nil {
		return v, fmt.Errorf("explain: %w", err)
	}
	var out []explainOutput
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
		return v, fmt.Errorf("decode %s: %v", raw, err)
	}
	root := out[0].Plan
	v.cost, v.estRows, v.actualRows = root.TotalCost, root.PlanRows, root.ActualRows
	v.jit = out[0].JIT != nil
	if v.jit || root.TotalCost > jitAbove {
		v.problems = append(v.problems, fmt.Sprintf("JIT triggers (total cost %.0f, jit_above_cost %.0f)", root.TotalCost, jitAbove))
	}
	if root.TotalCost >= cheapCost {
		v.problems = append(v.problems, misestimates(root, false)...)
	}
	return v, nil
}

// misestimates lists the nodes of a plan whose estimated rows per loop
// are more than maxRowsFactor from the rows they returned per loop (either
// way, counting 0 as 1). Nodes under a Limit are left out: they stop
// early by design, so they return fewer rows than they would.
func misestimates(n explainNode, underLimit bool) []string {
	var out []string
	if !underLimit && n.ActualLoops > 0 {
		est, act := max(n.PlanRows, 1), max(n.ActualRows, 1)
		if est/act > maxRowsFactor || act/est > maxRowsFactor {
			what := n.NodeType
			if n.Relation != "" {
				what += " on " + n.Relation
			}
			out = append(out, fmt.Sprintf("%s: estimated %.0f rows, returned %.0f (per loop; plan total cost %.0f)", what, n.PlanRows, n.ActualRows, n.TotalCost))
		}
	}
	for _, c := range n.Plans {
		out = append(out, misestimates(c, underLimit || n.NodeType == "Limit")...)
	}
	return out
}

// recorder is a querier that records the statements a reader sends.
type recorder struct {
	q   querier
	got *[]recorded
}

type recorded struct {
	sql  string
	args []any
}

func (r recorder) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	*r.got = append(*r.got, recorded{sql, slices.Clone(args)})
	return r.q.Query(ctx, sql, args...)
}

// scanShapes runs one page of every kind of scan the reader can send
// (each filter field set or not, each subject filter form, with and
// without an expiration instant and a cursor, forward and reverse) and
// returns the distinct statements with the arguments of their first use;
// the same with the reader's unpaged appends (store.BatchReader).
func scanShapes(t *testing.T, st *Store, rev store.Revision, k tuple.Key) []recorded {
	t.Helper()
	ctx := context.Background()
	var got []recorded
	r := &reader{s: st, q: recorder{q: st.pool, got: &got}, rev: rev}
	subjects := []*tuple.SubjectFilter{nil,
		{Type: k.Subject.Type}, {Type: k.Subject.Type, ID: k.Subject.ID},
		{Type: k.Subject.Type, Relation: tuple.Ellipsis}, {Type: k.Subject.Type, ID: k.Subject.ID, Relation: tuple.Ellipsis},
		{Type: "group", Relation: "member"}, {Type: "group", ID: "7", Relation: "member"}}
	drain := func(seq func(func(tuple.Relationship, error) bool)) {
		for _, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			break // one page is enough: its statement is recorded
		}
	}
	for _, opts := range []store.QueryOptions{{}, {Now: time.Now()}, {After: &k}, {After: &k, Now: time.Now()}} {
		for mask := range 8 {
			for _, sf := range subjects {
				f := tuple.Filter{Subject: sf}
				if mask&1 != 0 {
					f.ResourceType = k.Resource.Type
				}
				if mask&2 != 0 {
					f.ResourceID = k.Resource.ID
				}
				if mask&4 != 0 {
					f.Relation = k.Relation
				}
				drain(r.QueryRelationships(ctx, f, opts))
				if _, err := r.AppendRelationships(ctx, nil, f, opts); err != nil { // unpaged: LIMIT NULL
					t.Fatal(err)
				}
				if sf == nil || mask&2 != 0 {
					continue
				}
				rf := tuple.ReverseFilter{Subject: *sf}
				if mask&1 != 0 {
					rf.ResourceType = k.Resource.Type
				}
				if mask&4 != 0 {
					rf.Relation = k.Relation
				}
				drain(r.ReverseQueryRelationships(ctx, rf, opts))
				if _, err := r.AppendReverseRelationships(ctx, nil, rf, opts); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var out []recorded
	seen := map[string]bool{}
	for _, g := range got {
		// A statement with a page size and without (BatchReader's) are
		// planned apart: LIMIT NULL reads everything.
		k := fmt.Sprint(g.sql, g.args[1] == nil)
		if !seen[k] {
			seen[k] = true
			out = append(out, g)
		}
	}
	return out
}

// loadPlanStore fills a store with a few thousand relationships and a
// realistic changelog (hundreds of small writes, some deletes, a few
// schema writes), analyses the tables that grow as autovacuum would (but
// not the one-row tables: migrate analyses those), and returns the store,
// its URI, its head and a live key.
func loadPlanStore(t *testing.T) (*Store, string, store.Revision, tuple.Key) {
	t.Helper()
	ctx := context.Background()
	st, uri := openTest(t, Options{})
	if _, _, err := st.Import(ctx, store.WriteMeta{}, planData(5_000)); err != nil {
		t.Fatal(err)
	}
	var head store.Revision
	for i := range 300 {
		rev, err := st.Update(ctx, store.WriteMeta{Caller: "svc"}, func(ctx context.Context, tx store.Tx) error {
			for j := range 3 {
				r := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint((i*3 + j) % 600)},
					Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(1000 + i)}}
				if err := tx.Touch(ctx, r); err != nil {
					return err
				}
			}
			if i%5 == 0 {
				if err := tx.Delete(ctx, tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprint(i / 10)},
					Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint(i)}}); err != nil {
					return err
				}
			}
			if i%100 == 0 {
				return tx.WriteSchema(ctx, fmt.Sprintf("definition user {}\n// %d", i))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		head = rev
	}
	pgtestExec(t, uri, "ANALYZE pemba_relationships, pemba_changelog, pemba_audit, pemba_schemas")
	k := tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: "5"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "50"}}
	return st, uri, head, k
}

func pgtestExec(t *testing.T, uri, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestStatementPlans runs EXPLAIN ANALYZE on every statement the package
// sends (every SQL constant, with statementArgs's arguments, and every
// scan shape the reader builds), under both the generic and the custom
// plan, on a session with JIT on at PostgreSQL's default thresholds
// (Pemba turns JIT off for its own sessions, but an operator's URI may
// turn it on): JIT must not trigger, and the root's row estimate must be
// within maxRowsFactor of the truth unless the plan is cheap. Run with -v
// to print every statement's cost and rows.
func TestStatementPlans(t *testing.T) {
	ctx := context.Background()
	stmts := packageStatements(t)
	st, uri, head, k := loadPlanStore(t)
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var jitAbove float64
	if err := conn.QueryRow(ctx, "SELECT current_setting('jit_above_cost')::float8").Scan(&jitAbove); err != nil {
		t.Fatal(err)
	}
	p := planEnv{head: int64(head), now: time.Now().UnixNano(), key: k}
	if err := conn.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&p.xid); err != nil {
		t.Fatal(err)
	}
	// The staging table of an import of 1,000 new keys, as Import
	// creates it (never analysed).
	if _, err := conn.Exec(ctx, strings.Replace(createImportTable, "ON COMMIT DROP", "", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO pemba_import SELECT row_number() OVER (), resource_type, resource_id || '-new', relation,
		subject_type, subject_id, subject_relation, caveat_name, caveat_context::text, expires_ns
		FROM pemba_relationships LIMIT 1000`); err != nil {
		t.Fatal(err)
	}
	type job struct {
		name, sql string
		args      []string
	}
	var jobs []job
	for name, sql := range stmts {
		if f := statementArgs[name]; f != nil && plannedStart.MatchString(sql) {
			jobs = append(jobs, job{name, sql, f(p)})
		}
	}
	slices.SortFunc(jobs, func(a, b job) int { return strings.Compare(a.name, b.name) })
	shapes := scanShapes(t, st, head, k)
	for i, sh := range shapes {
		args := make([]string, len(sh.args))
		for j, a := range sh.args {
			args[j] = literal(a)
		}
		jobs = append(jobs, job{fmt.Sprintf("scan%02d", i), sh.sql, args})
	}
	var report strings.Builder
	scanMax := map[string]float64{}
	fmt.Fprintf(&report, "%-20s %-8s %10s %10s %10s\n", "statement", "plan", "cost", "est.rows", "rows")
	for _, j := range jobs {
		for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
			v, err := explainStatement(ctx, conn, "pemba_"+strings.ToLower(j.name), j.sql, j.args, mode, jitAbove)
			if err != nil {
				t.Fatalf("%s (%s): %v\n%s", j.name, mode, err, j.sql)
			}
			short := strings.TrimSuffix(strings.TrimPrefix(mode, "force_"), "_plan")
			if strings.HasPrefix(j.name, "scan") {
				scanMax[short] = max(scanMax[short], v.cost)
			} else {
				fmt.Fprintf(&report, "%-20s %-8s %10.0f %10.0f %10.0f\n", j.name, short, v.cost, v.estRows, v.actualRows)
			}
			for _, pr := range v.problems {
				t.Errorf("%s (%s): %s\n%s", j.name, mode, pr, j.sql)
			}
		}
	}
	t.Logf("%d statements and %d scan shapes, each planned generic and custom:\n%s"+
		"scan shapes: highest total cost %.0f (generic plan), %.0f (custom plan)",
		len(jobs)-len(shapes), len(shapes), report.String(), scanMax["generic"], scanMax["custom"])
}

// TestStatementPlansCatchUnanalysedTables shows that TestStatementPlans
// would have caught the export-page problem of issue 18: with the
// horizon table's statistics as a never-analysed table has them (before
// migrate analysed it), the planner guesses it at thousands of rows, the
// page query's estimate is off by that factor and its cost crosses
// jit_above_cost.
func TestStatementPlansCatchUnanalysedTables(t *testing.T) {
	ctx := context.Background()
	st, uri, head, _ := loadPlanStore(t)
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var jitAbove float64
	if err := conn.QueryRow(ctx, "SELECT current_setting('jit_above_cost')::float8").Scan(&jitAbove); err != nil {
		t.Fatal(err)
	}
	// An export page: every relationship, after a cursor.
	var got []recorded
	r := &reader{s: st, q: recorder{q: st.pool, got: &got}, rev: head}
	for _, err := range r.QueryRelationships(ctx, tuple.Filter{}, store.QueryOptions{After: &tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}}}) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	page := got[0]
	args := make([]string, len(page.args))
	for j, a := range page.args {
		args[j] = literal(a)
	}
	check := func(what string) planVerdict {
		v, err := explainStatement(ctx, conn, "pemba_export", page.sql, args, "force_generic_plan", jitAbove)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: cost %.0f, estimated %.0f rows, returned %.0f, JIT %v, problems %q", what, v.cost, v.estRows, v.actualRows, v.jit, v.problems)
		return v
	}
	if v := check("analysed (as migrate leaves it)"); len(v.problems) > 0 {
		t.Errorf("the export page fails the plan checks with the horizon analysed: %q", v.problems)
	}
	// Forget the statistics, as for a table never analysed.
	for _, sql := range []string{
		"UPDATE pg_class SET reltuples = -1, relpages = 0, relallvisible = 0 WHERE oid = 'pemba_horizon'::regclass",
		"DELETE FROM pg_statistic WHERE starelid = 'pemba_horizon'::regclass",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if v := check("never analysed"); len(v.problems) == 0 {
		t.Errorf("the plan checks pass the export page with the horizon never analysed: the test would not have caught issue 18's export problem")
	}
}
