package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
	"github.com/pemba-authz/pemba/schema"
)

// Sizes of the generated enterprise dataset.
const (
	benchEnterprises   = 20
	benchDepartments   = 30 // per enterprise
	benchDeptEmployees = 25 // per department
	benchRegions       = 50
	benchCustomers     = 25000
)

func rel(res, relation, sub string) tuple.Relationship {
	r, err := tuple.Parse(res + "#" + relation + "@" + sub)
	if err != nil {
		panic(err) // generator bug: the inputs are constants
	}
	return r
}

// enterpriseData generates the dataset: enterprises with admins, a tree of
// departments each, employees in departments, regions viewed by
// departments, and customers with roles. It returns the relationships and
// the employees of each enterprise.
func enterpriseData(rng *rand.Rand, customers int) ([]tuple.Relationship, [][]string) {
	var out []tuple.Relationship
	emps := make([][]string, benchEnterprises+1)
	for e := range benchEnterprises {
		ent := fmt.Sprintf("enterprise:e%d", e)
		out = append(out, rel(ent, "verified", "employee:*"))
		for d := range benchDepartments {
			dept := fmt.Sprintf("department:e%d_d%d", e, d)
			out = append(out, rel(dept, "enterprise", ent))
			if d == 0 {
				out = append(out, rel(ent, "member", dept+"#member"))
			} else {
				parent := fmt.Sprintf("department:e%d_d%d", e, rng.IntN(d))
				out = append(out, rel(dept, "parent", parent), rel(parent, "member", dept+"#member"))
			}
			for m := range benchDeptEmployees {
				emp := fmt.Sprintf("e%d_d%d_m%d", e, d, m)
				emps[e] = append(emps[e], emp)
				out = append(out, rel(dept, "member", "employee:"+emp))
			}
			out = append(out, rel(dept, "scoped_admin", "employee:"+emps[e][rng.IntN(len(emps[e]))]))
		}
		out = append(out, rel(ent, "creator", "employee:"+emps[e][0]))
		for range 3 {
			out = append(out, rel(ent, "super_admin", "employee:"+emps[e][rng.IntN(len(emps[e]))]))
		}
	}
	for r := range benchRegions {
		e := r % benchEnterprises
		for range 2 {
			out = append(out, rel(fmt.Sprintf("region:r%d", r), "viewer", fmt.Sprintf("department:e%d_d%d#member", e, rng.IntN(benchDepartments))))
		}
	}
	for c := range customers {
		e := c % benchEnterprises
		cust := fmt.Sprintf("crm_customer:c%d", c)
		pick := func() string { return "employee:" + emps[e][rng.IntN(len(emps[e]))] }
		editor := pick()
		// The last slot lists each customer's editor, for positive checks.
		emps[benchEnterprises] = append(emps[benchEnterprises], editor[len("employee:"):])
		out = append(out,
			rel(cust, "enterprise", fmt.Sprintf("enterprise:e%d", e)),
			rel(cust, "region", fmt.Sprintf("region:r%d", rng.IntN(benchRegions))),
			rel(cust, "editor", editor),
			rel(cust, "sales_rep", pick()),
		)
		if rng.IntN(2) == 0 {
			out = append(out, rel(cust, "viewer", pick()))
		} else {
			out = append(out, rel(cust, "viewer", fmt.Sprintf("department:e%d_d%d#member", e, rng.IntN(benchDepartments))))
		}
	}
	return out, emps
}

// benchEnv is a loaded dataset shared by the sub-benchmarks of one
// benchmark function.
type benchEnv struct {
	s    *schema.Schema
	rd   store.Reader
	emps [][]string
	n    int
}

var benchEnvs sync.Map // name -> *benchEnv; built once per test binary

func loadBench(b *testing.B, name string, gen func() []tuple.Relationship) *benchEnv {
	b.Helper()
	if v, ok := benchEnvs.Load(name); ok {
		return v.(*benchEnv)
	}
	rels := gen()
	env := &benchEnv{s: mustCompile(b, mustReadFile(b, "testdata/enterprise.zed")), rd: loadShared(b, rels), n: len(rels)}
	benchEnvs.Store(name, env)
	return env
}

// cpuStart and reportCPU report the process CPU time (user + system) per
// operation: on a shared machine it is far steadier than wall time.
func cpuStart() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, ops int) {
	if ops > 0 {
		b.ReportMetric(float64((cpuStart()-start).Microseconds())/float64(ops), "cpu-µs/op")
	}
}

func mustReadFile(b testing.TB, name string) string {
	src, err := os.ReadFile(name)
	if err != nil {
		b.Fatal(err)
	}
	return string(src)
}

// loadShared is load without a per-benchmark cleanup: the store lives as
// long as the test binary, so that sub-benchmarks and -count reuse it.
func loadShared(b *testing.B, rels []tuple.Relationship) store.Reader {
	return load(&noCleanup{b}, rels)
}

type noCleanup struct{ testing.TB }

func (noCleanup) Cleanup(func()) {}

func BenchmarkCheckEnterprise(b *testing.B) {
	var emps [][]string
	env := loadBench(b, "enterprise", func() []tuple.Relationship {
		rels, e := enterpriseData(rand.New(rand.NewPCG(1, 2)), benchCustomers)
		emps = e
		return rels
	})
	if emps != nil {
		env.emps = emps
	}
	b.Logf("%d relationships", env.n)
	runEnterpriseChecks(b, env.s, Params{Reader: env.rd, Now: testNow}, env.emps, benchCustomers)
}

// runEnterpriseChecks measures Check of crm_customer#view over the
// enterprise dataset, uncached and cached.
func runEnterpriseChecks(b *testing.B, s *schema.Schema, p Params, emps [][]string, customers int) {
	rng := rand.New(rand.NewPCG(3, 4))
	reqs := make([]CheckRequest, 1000)
	for i := range reqs {
		// Half the checks ask about a colleague in the same enterprise
		// (mostly denied after a full search), half about the editor
		// (allowed through edit).
		c := rng.IntN(customers)
		e := c % benchEnterprises
		emp := emps[e][rng.IntN(len(emps[e]))]
		if i%2 == 1 {
			emp = emps[benchEnterprises][c]
		}
		reqs[i] = CheckRequest{
			Resource:   tuple.ObjectRef{Type: "crm_customer", ID: fmt.Sprintf("c%d", c)},
			Permission: "view",
			Subject:    tuple.SubjectRef{Type: "employee", ID: emp},
		}
	}
	for _, tc := range []struct {
		name  string
		cache *Cache
		conc  int
	}{
		{"uncached", nil, 4},
		{"uncached-sequential", nil, 1},
		{"cached", NewCache(64 << 20), 4},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := New(s, Options{Cache: tc.cache, Concurrency: tc.conc})
			{
				// Measure warm caches (the evaluator's, and the store's
				// block cache): every request seen once.
				for _, r := range reqs {
					if _, err := e.Check(context.Background(), p, r); err != nil {
						b.Fatal(err)
					}
				}
			}
			has := 0
			i := 0
			var cpu time.Duration
			for b.Loop() {
				if i == 0 {
					cpu = cpuStart()
				}
				res, err := e.Check(context.Background(), p, reqs[i%len(reqs)])
				if err != nil {
					b.Fatal(err)
				}
				if res.Permissionship == HasPermission {
					has++
				}
				i++
			}
			reportCPU(b, cpu, i)
			b.ReportMetric(float64(has)/float64(i), "allowed/op")
			if tc.cache != nil {
				st := tc.cache.Stats()
				b.ReportMetric(float64(st.Hits)/float64(max(1, st.Hits+st.Misses)), "hit-ratio")
			}
		})
	}
}

// BenchmarkExplainEnterprise measures Explain on the questions of
// BenchmarkCheckEnterprise (uncached-sequential is the check alone): the
// price of asking why, paid only by a check that asks.
func BenchmarkExplainEnterprise(b *testing.B) {
	var emps [][]string
	env := loadBench(b, "enterprise", func() []tuple.Relationship {
		rels, e := enterpriseData(rand.New(rand.NewPCG(1, 2)), benchCustomers)
		emps = e
		return rels
	})
	if emps != nil {
		env.emps = emps
	}
	rng := rand.New(rand.NewPCG(3, 4))
	reqs := make([]CheckRequest, 1000)
	for i := range reqs {
		c := rng.IntN(benchCustomers)
		e := c % benchEnterprises
		emp := env.emps[e][rng.IntN(len(env.emps[e]))]
		if i%2 == 1 {
			emp = env.emps[benchEnterprises][c]
		}
		reqs[i] = CheckRequest{Resource: tuple.ObjectRef{Type: "crm_customer", ID: fmt.Sprintf("c%d", c)}, Permission: "view",
			Subject: tuple.SubjectRef{Type: "employee", ID: emp}}
	}
	ev := New(env.s, Options{Concurrency: 1})
	p := Params{Reader: env.rd, Now: testNow}
	i, nearest := 0, 0
	var cpu time.Duration
	for b.Loop() {
		if i == 0 {
			cpu = cpuStart()
		}
		x, err := ev.Explain(context.Background(), p, reqs[i%len(reqs)])
		if err != nil {
			b.Fatal(err)
		}
		if x.Nearest != nil {
			nearest++
		}
		i++
	}
	reportCPU(b, cpu, i)
	b.ReportMetric(float64(nearest)/float64(i), "nearest/op")
}

func BenchmarkCheckDeep(b *testing.B) {
	for _, depth := range []int{10, 30} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			env := loadBench(b, fmt.Sprintf("deep%d", depth), func() []tuple.Relationship {
				var rels []tuple.Relationship
				rels = append(rels, rel("group:g0", "member", "employee:deep"))
				for i := 1; i < depth; i++ {
					rels = append(rels, rel(fmt.Sprintf("group:g%d", i), "member", fmt.Sprintf("group:g%d#member", i-1)))
				}
				rels = append(rels, rel("doc:1", "viewer", fmt.Sprintf("group:g%d#member", depth-1)))
				return rels
			})
			for _, cached := range []bool{false, true} {
				b.Run(fmt.Sprintf("cached=%v", cached), func(b *testing.B) {
					var c *Cache
					if cached {
						c = NewCache(16 << 20)
					}
					e := New(env.s, Options{Cache: c})
					req := CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "employee", ID: "deep"}}
					for b.Loop() {
						res, err := e.Check(context.Background(), Params{Reader: env.rd, Now: testNow}, req)
						if err != nil || res.Permissionship != HasPermission {
							b.Fatal(res, err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkCheckDeepFolder checks department#manage (scoped_admin +
// parent->manage + enterprise->administer) on the bottom of a chain of
// 30 departments, with the nested index of department#parent
// (nestedarrow.go) and without it: a scoped admin of the top (29 levels
// up), the enterprise's creator (the base of the bottom itself) and an
// employee with no right (every level ruled out).
func BenchmarkCheckDeepFolder(b *testing.B) {
	benchDeepFolder(b, func(rels []tuple.Relationship) store.Reader { return loadShared(b, rels) })
}

// benchDeepFolder runs BenchmarkCheckDeepFolder over the readers load
// makes.
func benchDeepFolder(b *testing.B, load func([]tuple.Relationship) store.Reader) {
	const depth = 30
	var rels []tuple.Relationship
	rels = append(rels, rel("enterprise:e", "creator", "employee:ceo"), rel("department:d0", "scoped_admin", "employee:boss"))
	for i := range depth {
		d := fmt.Sprintf("department:d%d", i)
		rels = append(rels, rel(d, "enterprise", "enterprise:e"))
		if i > 0 {
			rels = append(rels, rel(d, "parent", fmt.Sprintf("department:d%d", i-1)))
		}
	}
	s := mustCompile(b, mustReadFile(b, "testdata/enterprise.zed"))
	readers := map[bool]store.Reader{false: load(rels), true: load(loadNestedRels(s, rels))}
	for _, tc := range []struct {
		subject string
		want    Permissionship
	}{{"boss", HasPermission}, {"ceo", HasPermission}, {"nobody", NoPermission}} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/index=%v", tc.subject, on), func(b *testing.B) {
				e := New(s, Options{NestedIndex: on})
				req := CheckRequest{Resource: tuple.ObjectRef{Type: "department", ID: fmt.Sprintf("d%d", depth-1)}, Permission: "manage", Subject: tuple.SubjectRef{Type: "employee", ID: tc.subject}}
				p := Params{Reader: readers[on], Now: testNow}
				b.ReportAllocs()
				cpu, n := cpuStart(), 0
				for b.Loop() {
					res, err := e.Check(context.Background(), p, req)
					if err != nil || res.Permissionship != tc.want {
						b.Fatal(res, err)
					}
					n++
				}
				reportCPU(b, cpu, n)
			})
		}
	}
}

// wideGroupData is one group with 10,000 direct members and 100 nested
// groups of 100, viewing doc:1.
func wideGroupData() []tuple.Relationship {
	const members = 10000
	var rels []tuple.Relationship
	for i := range members {
		rels = append(rels, rel("group:wide", "member", fmt.Sprintf("employee:m%d", i)))
	}
	for g := range 100 {
		rels = append(rels, rel("group:wide", "member", fmt.Sprintf("group:sub%d#member", g)))
		for i := range 100 {
			rels = append(rels, rel(fmt.Sprintf("group:sub%d", g), "member", fmt.Sprintf("employee:s%d_%d", g, i)))
		}
	}
	return append(rels, rel("doc:1", "viewer", "group:wide#member"))
}

func BenchmarkCheckWideGroup(b *testing.B) {
	env := loadBench(b, "wide", wideGroupData)
	for _, tc := range []struct {
		name, subject string
		want          Permissionship
	}{
		{"direct-member", "m5000", HasPermission},
		{"nested-member", "s99_50", HasPermission},
		{"non-member", "nobody", NoPermission},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := New(env.s, Options{})
			req := CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: "view", Subject: tuple.SubjectRef{Type: "employee", ID: tc.subject}}
			for b.Loop() {
				res, err := e.Check(context.Background(), Params{Reader: env.rd, Now: testNow}, req)
				if err != nil || res.Permissionship != tc.want {
					b.Fatal(res, err)
				}
			}
		})
	}
}

func BenchmarkLookupResources(b *testing.B) {
	const docs = 100000
	env := loadBench(b, "lookup", func() []tuple.Relationship {
		var rels []tuple.Relationship
		rels = append(rels, rel("group:eng", "member", "employee:anne"))
		for i := range docs {
			rels = append(rels, rel(fmt.Sprintf("doc:d%06d", i), "viewer", "group:eng#member"))
		}
		return rels
	})
	for _, tc := range []struct {
		name  string
		limit int
		want  int
	}{
		{"all-100k", 0, docs},
		{"first-page-1000", 1000, 1000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := New(env.s, Options{})
			ops := 0
			var cpu time.Duration
			for b.Loop() {
				if ops == 0 {
					cpu = cpuStart()
				}
				ops++
				n := 0
				for _, err := range e.LookupResources(context.Background(), Params{Reader: env.rd, Now: testNow},
					LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: tuple.SubjectRef{Type: "employee", ID: "anne"}, Limit: tc.limit}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != tc.want {
					b.Fatalf("%d results, want %d", n, tc.want)
				}
			}
			reportCPU(b, cpu, ops)
		})
	}
}

func BenchmarkLookupSubjectsWideGroup(b *testing.B) {
	env := loadBench(b, "wide", wideGroupData)
	for _, tc := range []struct {
		name, perm string
		want       int
	}{
		{"pure-20k", "view", 20000},               // unions only: no checks
		{"exclusion-20k", "view_unbanned", 20000}, // one check per subject
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := New(env.s, Options{})
			ops := 0
			var cpu time.Duration
			for b.Loop() {
				if ops == 0 {
					cpu = cpuStart()
				}
				ops++
				n := 0
				for _, err := range e.LookupSubjects(context.Background(), Params{Reader: env.rd, Now: testNow},
					LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "1"}, Permission: tc.perm, SubjectType: "employee"}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != tc.want {
					b.Fatalf("%d results, want %d", n, tc.want)
				}
			}
			reportCPU(b, cpu, ops)
		})
	}
}
