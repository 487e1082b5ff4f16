package workload

import (
	"iter"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/pemba-authz/pemba/engine/tuple"
	example "github.com/pemba-authz/pemba/examples/enterprise"
)

// The enterprise workload models examples/enterprise: a platform hosting
// enterprises of skewed sizes (bounded Pareto: most have about 20
// employees, a few at the medium and large scales have 50,000), each with
// a department tree up to 8 levels deep, scoped admins, modules, CRM
// customers with regions, roles and an owning department, department
// managers, delegations and a CRM licence; and cross-enterprise links at
// every stage of their life (applied, approved by one or both sides,
// approved by the platform, revoked by one side, ended with their
// project), between some verified and some unverified enterprises, with
// grants of which some have expired, capabilities (chat, capped file
// transfer, video within hours) and capabilities withheld from a
// department by its own enterprise.
//
// Relationships follow examples/enterprise/schema.zed and its validation
// file: a department tree is written as S#parent@P, S#enterprise@E and
// P#member@S#member; top-level departments as E#member@S#member; grants
// are mirrored on the employee (employee:X#link@link:L); a link's three
// approvals carry the project's end date when it has one.

const (
	entMinSize = 20
	entMaxSize = 50_000
	// entAlpha shapes the size distribution: P(size > s) = (20/s)^alpha.
	entAlpha = 1.1
	// relsPerEmployee calibrates how many employees a scale's target
	// relationship count buys (measured on the generator, seed 1).
	relsPerEmployee = 5.7
	// maxDeptDepth is the deepest department nesting.
	maxDeptDepth = 8
	// employeesPerDept sets how many departments an enterprise has.
	employeesPerDept = 15
	// maxGrantsPerSide bounds the grants of one enterprise on one link.
	maxGrantsPerSide = 40
)

var modules = [...]string{"crm", "contacts", "apps", "devices"}

// Instants of expirations and licence terms: far in the past (expired)
// or far in the future, so the data set does not rot.
var (
	expiredAt = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	validTill = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

// checkNow is the "now" the service supplies to licence checks.
const checkNow = "2026-06-01T00:00:00Z"

// Tags separate the derived facts, so that two facts about the same
// numbers are independent.
const (
	tSize uint64 = iota + 1
	tVerified
	tPartners
	tDeptOf
	tDeptAdmin
	tModAdmin
	tRegionViewer
	tRegionDept
	tCustRegion
	tCustRep
	tCustRole
	tCustDept
	tCustFin
	tLinkEnds
	tLinkApproved // unused since links have lifecycle stages (tLinkStage); kept so later tags keep their values
	tLinkNamed
	tGrant
	tGrantExp
	tChat
	tVideo
	tDelOwner
	tDelWho
	tDelOrg
	tDelKinds
	tSeat
	tTerm
	tDeptManager
	tCustOwner
	tLinkStage
	tLinkEnd
	tFile
	tWithheld
)

// entPlan is the shape of one enterprise; everything else about it is
// derived on demand.
type entPlan struct {
	n           uint64 // employees; employee 0 is the creator, 1..admins super admins
	first       uint64 // global number of employee 0, for uniform sampling
	depts       uint64
	branch      uint64 // children per department: the tree is an implicit heap
	admins      uint64
	regions     uint64
	customers   uint64
	delegations uint64
	verified    bool
	partners    bool // partners_only
}

type linkPlan struct{ ends [2]uint64 } // from, to

type enterprise struct {
	base
	ents      []entPlan
	employees uint64
	links     []linkPlan
	// pairLinks lists the links between two enterprises (key: pairKey).
	pairLinks map[[2]uint64][]uint64

	sizeOnce sync.Once
	size     int
}

func newEnterprise(b base) *enterprise {
	w := &enterprise{base: b, pairLinks: map[[2]uint64][]uint64{}}
	budget := uint64(float64(b.scale.Target()) / relsPerEmployee)
	maxSize := max(entMinSize, min(entMaxSize, budget/3))
	// The tail of the size distribution is too thin to promise giants at
	// every scale, so the first enterprises are giants by construction.
	giants := max(1, budget/400_000)
	for k := uint64(0); w.employees < budget; k++ {
		// Bounded Pareto by inversion of a uniform draw in (0, 1].
		u := (float64(w.h(tSize, k, 0)>>11) + 1) / (1 << 53)
		n := uint64(float64(entMinSize) / math.Pow(u, 1/entAlpha))
		n = min(max(n, entMinSize), maxSize)
		if k < giants {
			n = maxSize
		}
		p := entPlan{
			n:           n,
			first:       w.employees,
			depts:       max(1, n/employeesPerDept),
			admins:      1 + n/2000,
			regions:     min(50, 1+n/1000),
			customers:   max(5, n/2),
			delegations: 1 + n/200,
			verified:    chance(w.h(tVerified, k, 0), 90),
		}
		p.partners = p.verified && chance(w.h(tPartners, k, 0), 10)
		p.branch = 2
		for treeCapacity(p.branch) < p.depts {
			p.branch++
		}
		w.ents = append(w.ents, p)
		w.employees += n
	}
	// One link per two enterprises; bigger enterprises apply more often.
	nl := max(1, uint64(len(w.ents))/2)
	for l := range nl {
		a := w.entOfEmployee(w.h(tLinkEnds, l, 0) % w.employees)
		b := w.h(tLinkEnds, l, 1) % uint64(len(w.ents))
		if a == b {
			b = (b + 1) % uint64(len(w.ents))
		}
		if a == b {
			break // a single enterprise: no links
		}
		w.links = append(w.links, linkPlan{ends: [2]uint64{a, b}})
		key := pairKey(a, b)
		w.pairLinks[key] = append(w.pairLinks[key], l)
	}
	return w
}

// treeCapacity is how many departments a tree of branching b holds
// within maxDeptDepth levels.
func treeCapacity(b uint64) uint64 {
	total, level := uint64(0), uint64(1)
	for range maxDeptDepth {
		level *= b
		total += level
	}
	return total
}

func pairKey(a, b uint64) [2]uint64 { return [2]uint64{min(a, b), max(a, b)} }

// h derives fact tag about numbers a and b.
func (w *enterprise) h(tag, a, b uint64) uint64 { return hash3(w.seed+tag*0x9e3779b97f4a7c15, a, b) }

func (w *enterprise) entOfEmployee(g uint64) uint64 {
	return uint64(sort.Search(len(w.ents), func(k int) bool { return w.ents[k].first > g })) - 1
}

func (w *enterprise) Name() string { return "enterprise" }

// Schema is the example's schema without its invariants: the generated
// data (seats without a licence count, grants on links at every stage)
// does not keep them, and SpiceDB, which the benchmark also drives, does
// not parse them.
func (w *enterprise) Schema() string { return example.SchemaWithoutInvariants() }

// Size counts the relationships by generating them once (a couple of
// seconds at the large scale); the count is remembered.
func (w *enterprise) Size() int {
	w.sizeOnce.Do(func() {
		for range w.Relationships() {
			w.size++
		}
	})
	return w.size
}

// Names of objects.

func (w *enterprise) ent(k uint64) string     { return id("e", k) }
func (w *enterprise) emp(k, i uint64) string  { return id("e", k) + "-" + id("", i) }
func (w *enterprise) dept(k, j uint64) string { return id("e", k) + "-d" + id("", j) }
func (w *enterprise) module(k uint64, m int) string {
	return id("e", k) + "-" + modules[m]
}
func (w *enterprise) region(k, j uint64) string { return id("e", k) + "-r" + id("", j) }
func (w *enterprise) cust(k, c uint64) string   { return id("e", k) + "-c" + id("", c) }
func (w *enterprise) deleg(k, j uint64) string  { return id("e", k) + "-g" + id("", j) }
func (w *enterprise) license(k uint64) string   { return id("e", k) + "-crm" }
func (w *enterprise) link(l uint64) string      { return id("l", l) }

func (w *enterprise) empRef(k, i uint64) tuple.SubjectRef {
	return tuple.SubjectRef{Type: "employee", ID: w.emp(k, i)}
}

// Derived facts.

// deptParent returns the parent department of j, or false for a top-level one.
func (w *enterprise) deptParent(k, j uint64) (uint64, bool) {
	b := w.ents[k].branch
	if j < b {
		return 0, false
	}
	return j/b - 1, true
}

// deptOf is the department employee i works in.
func (w *enterprise) deptOf(k, i uint64) uint64 { return w.h(tDeptOf, k, i) % w.ents[k].depts }

// deptAdmin returns the scoped admin of department j, if it has one.
func (w *enterprise) deptAdmin(k, j uint64) (uint64, bool) {
	h := w.h(tDeptAdmin, k, j)
	return (h >> 8) % w.ents[k].n, chance(h, 20)
}

// inSubtree reports whether department j is d or below it.
func (w *enterprise) inSubtree(k, j, d uint64) bool {
	for {
		if j == d {
			return true
		}
		p, ok := w.deptParent(k, j)
		if !ok {
			return false
		}
		j = p
	}
}

func (w *enterprise) isAdmin(k, i uint64) bool { return i <= w.ents[k].admins }

func (w *enterprise) moduleAdmin(k uint64, m int) (uint64, bool) {
	return w.h(tModAdmin, k, uint64(m)) % w.ents[k].n, m < 2 // crm and contacts have one
}

func (w *enterprise) regionViewer(k, j, v uint64) uint64 {
	// Consecutive employees: the two viewers are distinct.
	return (w.h(tRegionViewer, k, j) + v) % w.ents[k].n
}

// regionDept returns the department whose members view region j, if any.
func (w *enterprise) regionDept(k, j uint64) (uint64, bool) {
	return w.h(tRegionDept, k, j) % w.ents[k].depts, j%4 == 0
}

type customer struct {
	region      uint64
	rep         uint64
	hasRep      bool
	role        int // 0 viewer, 1 editor, 2 manager
	holder      uint64
	viewDept    uint64
	hasViewDept bool
	finance     uint64
	hasFinance  bool
}

var roleNames = [3]string{"viewer", "editor", "manager"}

func (w *enterprise) customer(k, c uint64) customer {
	p := &w.ents[k]
	hr, hd, hf := w.h(tCustRep, k, c), w.h(tCustDept, k, c), w.h(tCustFin, k, c)
	role := w.h(tCustRole, k, c)
	return customer{
		region:      w.h(tCustRegion, k, c) % p.regions,
		rep:         (hr >> 8) % p.n,
		hasRep:      chance(hr, 70),
		role:        int(role % 3),
		holder:      (role >> 8) % p.n,
		viewDept:    (hd >> 8) % p.depts,
		hasViewDept: chance(hd, 15),
		finance:     (hf >> 8) % p.n,
		hasFinance:  chance(hf, 10),
	}
}

func (w *enterprise) canViewRegion(k, j, i uint64) bool {
	if w.regionViewer(k, j, 0) == i || w.regionViewer(k, j, 1) == i {
		return true
	}
	d, ok := w.regionDept(k, j)
	return ok && w.inSubtree(k, w.deptOf(k, i), d)
}

func (w *enterprise) canEditCustomer(k, c, i uint64) bool {
	cu := w.customer(k, c)
	return (cu.hasRep && cu.rep == i) || (cu.role > 0 && cu.holder == i)
}

func (w *enterprise) canViewCustomer(k, c, i uint64) bool {
	cu := w.customer(k, c)
	return cu.holder == i || (cu.hasRep && cu.rep == i) ||
		(cu.hasViewDept && w.inSubtree(k, w.deptOf(k, i), cu.viewDept)) ||
		w.canViewRegion(k, cu.region, i) || w.seesRecordsOf(k, w.custOwner(k, c), i) || w.isAdmin(k, i)
}

func (w *enterprise) canManageDept(k, d, i uint64) bool {
	if w.isAdmin(k, i) {
		return true
	}
	for {
		if a, ok := w.deptAdmin(k, d); ok && a == i {
			return true
		}
		p, ok := w.deptParent(k, d)
		if !ok {
			return false
		}
		d = p
	}
}

// deptManager returns the line manager of department j, if it has one.
func (w *enterprise) deptManager(k, j uint64) (uint64, bool) {
	h := w.h(tDeptManager, k, j)
	return (h >> 8) % w.ents[k].n, chance(h, 60)
}

// custOwner is the department that owns customer c.
func (w *enterprise) custOwner(k, c uint64) uint64 { return w.h(tCustOwner, k, c) % w.ents[k].depts }

// seesRecordsOf reports department d#view_records for employee i: i
// manages d or a department above it.
func (w *enterprise) seesRecordsOf(k, d, i uint64) bool {
	for {
		if m, ok := w.deptManager(k, d); ok && m == i {
			return true
		}
		p, ok := w.deptParent(k, d)
		if !ok {
			return false
		}
		d = p
	}
}

// Links.

// linkApprovals returns which of a link's three approvals are written
// (from_enterprise's internal approval, to_enterprise's acceptance, the
// platform's) and the expiration they share (zero: none). Stages: 5%
// applied only, 5% approved by from only, 10% by both sides and awaiting
// the platform, 3% revoked by from and 3% by to after the platform
// approved, 74% approved by all three. Of those approved by the platform,
// 10% were for a project that ended in 2020 and 20% for one that ends in
// 2099.
func (w *enterprise) linkApprovals(l uint64) (from, to, platform bool, exp time.Time) {
	switch st := w.h(tLinkStage, l, 0) % 100; {
	case st < 5:
	case st < 10:
		from = true
	case st < 20:
		from, to = true, true
	case st < 23:
		to, platform = true, true
	case st < 26:
		from, platform = true, true
	default:
		from, to, platform = true, true, true
	}
	if platform {
		switch e := w.h(tLinkEnd, l, 0) % 100; {
		case e < 10:
			exp = expiredAt
		case e < 30:
			exp = validTill
		}
	}
	return from, to, platform, exp
}

// linkApproved reports link l#active: all three approvals written and
// their common end not passed.
func (w *enterprise) linkApproved(l uint64) bool {
	from, to, platform, exp := w.linkApprovals(l)
	return from && to && platform && (exp.IsZero() || exp.After(time.Now()))
}

// linkNamed reports whether side s (0 from, 1 to) named the other a
// partner; only partners_only enterprises do.
func (w *enterprise) linkNamed(l uint64, s int) bool {
	return w.ents[w.links[l].ends[s]].partners && chance(w.h(tLinkNamed, l, uint64(s)), 50)
}

func (w *enterprise) grants(l uint64, s int) uint64 {
	a, b := w.ents[w.links[l].ends[0]].n, w.ents[w.links[l].ends[1]].n
	n := w.ents[w.links[l].ends[s]].n
	return min(n, 2+min(a, b)/50, maxGrantsPerSide)
}

// grantee is the employee of grant j on side s. Grants of one side are
// distinct employees: the stride is a prime, coprime to n unless n is a
// multiple of it.
func (w *enterprise) grantee(l uint64, s int, j uint64) uint64 {
	n := w.ents[w.links[l].ends[s]].n
	stride := uint64(7919)
	if n%stride == 0 {
		stride = 1
	}
	return (w.h(tGrant, l, uint64(s)) + j*stride) % n
}

// grantExpiration returns the expiration of grant j on side s (zero: none).
func (w *enterprise) grantExpiration(l uint64, s int, j uint64) time.Time {
	switch p := w.h(tGrantExp, l, uint64(s)<<32|j) % 100; {
	case p < 12:
		return expiredAt.Add(time.Duration(p) * 24 * time.Hour)
	case p < 25:
		return validTill
	}
	return time.Time{}
}

// grantIndex returns which grant of side s employee i holds, if any.
func (w *enterprise) grantIndex(l uint64, s int, i uint64) (uint64, bool) {
	for j := range w.grants(l, s) {
		if w.grantee(l, s, j) == i {
			return j, true
		}
	}
	return 0, false
}

// fileTransfer returns whether grant j on side s includes file transfer,
// and its size cap in bytes (0: none).
func (w *enterprise) fileTransfer(l uint64, s int, j uint64) (bool, int64) {
	h := w.h(tFile, l, uint64(s)<<32|j)
	if !chance(h, 30) {
		return false, 0
	}
	if chance(h>>16, 50) {
		return true, 10 << 20
	}
	return true, 0
}

// withheldDept returns the department of side s whose file transfer its
// own enterprise withheld on link l, if any (10% of sides): the department
// of one of the side's grantees.
func (w *enterprise) withheldDept(l uint64, s int) (uint64, bool) {
	h := w.h(tWithheld, l, uint64(s))
	k := w.links[l].ends[s]
	return w.deptOf(k, w.grantee(l, s, (h>>8)%w.grants(l, s))), chance(h, 10)
}

// canTransfer reports link l#use_file_transfer for employee i of side s
// sending a file of size bytes.
func (w *enterprise) canTransfer(l uint64, s int, i uint64, size int64) bool {
	j, ok := w.grantIndex(l, s, i)
	if !ok || !w.usable(l, s, i) {
		return false
	}
	ft, limit := w.fileTransfer(l, s, j)
	if !ft || (limit > 0 && size > limit) {
		return false
	}
	k := w.links[l].ends[s]
	d, withheld := w.withheldDept(l, s)
	return !withheld || !w.inSubtree(k, w.deptOf(k, i), d)
}

func (w *enterprise) grantLive(l uint64, s int, i uint64) bool {
	j, ok := w.grantIndex(l, s, i)
	if !ok {
		return false
	}
	exp := w.grantExpiration(l, s, j)
	return exp.IsZero() || exp.After(time.Now())
}

// accepts reports the link's from_accepts (s=0) or to_accepts (s=1).
func (w *enterprise) accepts(l uint64, s int) bool {
	e := w.ents[w.links[l].ends[s]]
	return (e.verified && !e.partners) || w.linkNamed(l, s)
}

// usable reports link l#usable_by for employee i of side s.
func (w *enterprise) usable(l uint64, s int, i uint64) bool {
	a, b := w.ents[w.links[l].ends[0]], w.ents[w.links[l].ends[1]]
	return w.linkApproved(l) && a.verified && b.verified && w.accepts(l, 0) && w.accepts(l, 1) &&
		w.grantLive(l, s, i)
}

// canMessage reports employee (kx, ix)#can_message@employee (ky, iy).
func (w *enterprise) canMessage(kx, ix, ky, iy uint64) bool {
	if kx == ky {
		return true
	}
	for _, l := range w.pairLinks[pairKey(kx, ky)] {
		sx := 0
		if w.links[l].ends[1] == kx {
			sx = 1
		}
		if w.grantLive(l, sx, ix) && w.usable(l, 1-sx, iy) {
			return true
		}
	}
	return false
}

// Delegations and licences.

type delegation struct {
	owner          uint64
	toOrg          bool
	who            uint64 // employee, or enterprise when toOrg
	orders, payRun bool
}

func (w *enterprise) delegation(k, j uint64) delegation {
	hw, kinds := w.h(tDelWho, k, j), w.h(tDelKinds, k, j)
	d := delegation{
		owner:  w.h(tDelOwner, k, j) % w.ents[k].n,
		toOrg:  !chance(hw, 80),
		who:    (hw >> 8) % w.ents[k].n,
		orders: chance(kinds, 60),
		payRun: chance(kinds>>16, 50),
	}
	if d.toOrg {
		d.who = w.h(tDelOrg, k, j) % uint64(len(w.ents))
		if d.who == k {
			d.who = (k + 1) % uint64(len(w.ents))
		}
		if d.who == k {
			d.toOrg, d.who = false, d.owner // a single enterprise: delegate to oneself
		}
	}
	return d
}

func (w *enterprise) canManageOrders(k, j, ks, is uint64) bool {
	d := w.delegation(k, j)
	if ks == k && is == d.owner {
		return true
	}
	if !d.orders {
		return false
	}
	if d.toOrg {
		return ks == d.who
	}
	return ks == k && is == d.who
}

// seat returns whether employee i holds a CRM seat and its expiration.
func (w *enterprise) seat(k, i uint64) (bool, time.Time) {
	h := w.h(tSeat, k, i)
	if h%3 != 0 {
		return false, time.Time{}
	}
	switch (h >> 8) % 20 {
	case 0:
		return true, expiredAt
	case 1:
		return true, validTill
	}
	return true, time.Time{}
}

func (w *enterprise) termValid(k uint64) bool { return chance(w.h(tTerm, k, 0), 90) }

func (w *enterprise) canUseLicense(k, i uint64) bool {
	ok, exp := w.seat(k, i)
	return ok && (exp.IsZero() || exp.After(time.Now())) && w.termValid(k)
}

// Relationships streams every enterprise, then every link.
func (w *enterprise) Relationships() iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		y := func(r tuple.Relationship) bool { return yield(r, nil) }
		for j := range uint64(3) {
			if !y(rel("platform", "pemba", "reviewer", "employee", id("reviewer", j))) {
				return
			}
		}
		for k := range uint64(len(w.ents)) {
			if !w.enterpriseRels(k, y) {
				return
			}
		}
		for l := range uint64(len(w.links)) {
			if !w.linkRels(l, y) {
				return
			}
		}
	}
}

func (w *enterprise) enterpriseRels(k uint64, y func(tuple.Relationship) bool) bool {
	p := &w.ents[k]
	e := w.ent(k)
	star := "*"
	rs := []tuple.Relationship{
		rel("enterprise", e, "platform", "platform", "pemba"),
		rel("enterprise", e, "creator", "employee", w.emp(k, 0)),
	}
	for i := uint64(1); i <= p.admins; i++ {
		rs = append(rs, rel("enterprise", e, "super_admin", "employee", w.emp(k, i)))
	}
	if p.verified {
		rs = append(rs, rel("enterprise", e, "verified", "employee", star))
	}
	if p.partners {
		rs = append(rs, rel("enterprise", e, "partners_only", "employee", star))
	}
	if !emit(y, rs) {
		return false
	}
	for j := range p.depts {
		d := w.dept(k, j)
		rs = append(rs[:0], rel("department", d, "enterprise", "enterprise", e))
		if par, ok := w.deptParent(k, j); ok {
			rs = append(rs,
				rel("department", d, "parent", "department", w.dept(k, par)),
				relSet("department", w.dept(k, par), "member", "department", d, "member"))
		} else {
			rs = append(rs,
				rel("department", d, "parent", "enterprise", e),
				relSet("enterprise", e, "member", "department", d, "member"))
		}
		if a, ok := w.deptAdmin(k, j); ok {
			rs = append(rs, rel("department", d, "scoped_admin", "employee", w.emp(k, a)))
		}
		if m, ok := w.deptManager(k, j); ok {
			rs = append(rs, rel("department", d, "manager", "employee", w.emp(k, m)))
		}
		if !emit(y, rs) {
			return false
		}
	}
	for i := range p.n {
		x := w.emp(k, i)
		rs = append(rs[:0],
			rel("department", w.dept(k, w.deptOf(k, i)), "member", "employee", x),
			rel("employee", x, "enterprise", "enterprise", e))
		if ok, exp := w.seat(k, i); ok {
			r := rel("license", w.license(k), "seat", "employee", x)
			r.Expiration = exp
			rs = append(rs, r)
		}
		if !emit(y, rs) {
			return false
		}
	}
	rs = rs[:0]
	for m := range modules {
		rs = append(rs, rel("module", w.module(k, m), "enterprise", "enterprise", e))
		if a, ok := w.moduleAdmin(k, m); ok {
			rs = append(rs, rel("module", w.module(k, m), "module_admin", "employee", w.emp(k, a)))
		}
	}
	term := rel("license", w.license(k), "term", "employee", star)
	expires := validTill
	if !w.termValid(k) {
		expires = expiredAt
	}
	term.Caveat = &tuple.Caveat{Name: "license_valid", Context: map[string]any{"expires_at": expires.Format(time.RFC3339)}}
	rs = append(rs,
		rel("license", w.license(k), "enterprise", "enterprise", e),
		rel("license", w.license(k), "module", "module", w.module(k, 0)),
		term)
	for j := range p.regions {
		r := w.region(k, j)
		rs = append(rs,
			rel("region", r, "viewer", "employee", w.emp(k, w.regionViewer(k, j, 0))),
			rel("region", r, "viewer", "employee", w.emp(k, w.regionViewer(k, j, 1))))
		if d, ok := w.regionDept(k, j); ok {
			rs = append(rs, relSet("region", r, "viewer", "department", w.dept(k, d), "member"))
		}
	}
	if !emit(y, rs) {
		return false
	}
	for c := range p.customers {
		cu, name := w.customer(k, c), w.cust(k, c)
		rs = append(rs[:0],
			rel("crm_customer", name, "enterprise", "enterprise", e),
			rel("crm_customer", name, "region", "region", w.region(k, cu.region)),
			rel("crm_customer", name, "owner_department", "department", w.dept(k, w.custOwner(k, c))),
			rel("crm_customer", name, roleNames[cu.role], "employee", w.emp(k, cu.holder)))
		if cu.hasRep {
			rs = append(rs, rel("crm_customer", name, "sales_rep", "employee", w.emp(k, cu.rep)))
		}
		if cu.hasViewDept {
			rs = append(rs, relSet("crm_customer", name, "viewer", "department", w.dept(k, cu.viewDept), "member"))
		}
		if cu.hasFinance {
			rs = append(rs, rel("crm_customer", name, "finance_only", "employee", w.emp(k, cu.finance)))
		}
		if !emit(y, rs) {
			return false
		}
	}
	for j := range p.delegations {
		d, name := w.delegation(k, j), w.deleg(k, j)
		rs = append(rs[:0], rel("delegation", name, "owner", "employee", w.emp(k, d.owner)))
		if d.toOrg {
			rs = append(rs, relSet("delegation", name, "delegate", "enterprise", w.ent(d.who), "member"))
		} else {
			rs = append(rs, rel("delegation", name, "delegate", "employee", w.emp(k, d.who)))
		}
		if d.orders {
			rs = append(rs, rel("delegation", name, "order_management", "employee", star))
		}
		if d.payRun {
			rs = append(rs, rel("delegation", name, "payment_management", "employee", star))
		}
		if !emit(y, rs) {
			return false
		}
	}
	return true
}

func (w *enterprise) linkRels(l uint64, y func(tuple.Relationship) bool) bool {
	lp, name := w.links[l], w.link(l)
	rs := []tuple.Relationship{
		rel("link", name, "platform", "platform", "pemba"),
		rel("link", name, "from_enterprise", "enterprise", w.ent(lp.ends[0])),
		rel("link", name, "to_enterprise", "enterprise", w.ent(lp.ends[1])),
	}
	from, to, platform, exp := w.linkApprovals(l)
	for _, a := range [...]struct {
		ok       bool
		relation string
	}{{from, "approved_by_from"}, {to, "approved_by_to"}, {platform, "approved"}} {
		if a.ok {
			r := rel("link", name, a.relation, "employee", "*")
			r.Expiration = exp
			rs = append(rs, r)
		}
	}
	for s := range 2 {
		if d, ok := w.withheldDept(l, s); ok {
			rs = append(rs, relSet("link", name, "file_transfer_withheld", "department", w.dept(lp.ends[s], d), "member"))
		}
	}
	for s, by := range [2]string{"named_partner_by_from", "named_partner_by_to"} {
		if w.linkNamed(l, s) {
			rs = append(rs, rel("link", name, by, "employee", "*"))
		}
	}
	if !emit(y, rs) {
		return false
	}
	for s := range 2 {
		k := lp.ends[s]
		for j := range w.grants(l, s) {
			x := w.emp(k, w.grantee(l, s, j))
			exp := w.grantExpiration(l, s, j)
			g := rel("link", name, "granted", "employee", x)
			g.Expiration = exp
			m := rel("employee", x, "link", "link", name)
			m.Expiration = exp
			rs = append(rs[:0], g, m)
			hc := w.h(tChat, l, uint64(s)<<32|j)
			if chance(hc, 60) {
				rs = append(rs, rel("link", name, "chat", "employee", x))
			}
			if hv := w.h(tVideo, l, uint64(s)<<32|j); chance(hv, 20) {
				v := rel("link", name, "video_meeting", "employee", x)
				if chance(hv>>16, 50) { // office hours only
					v.Caveat = &tuple.Caveat{Name: "within_hours", Context: map[string]any{"tz": "+08:00", "from_hour": 9, "to_hour": 18}}
				}
				rs = append(rs, v)
			}
			if ft, limit := w.fileTransfer(l, s, j); ft {
				f := rel("link", name, "file_transfer", "employee", x)
				if limit > 0 {
					f.Caveat = &tuple.Caveat{Name: "file_size_limit", Context: map[string]any{"max_bytes": limit}}
				}
				rs = append(rs, f)
			}
			if !emit(y, rs) {
				return false
			}
		}
	}
	return true
}

func emit(y func(tuple.Relationship) bool, rs []tuple.Relationship) bool {
	for _, r := range rs {
		if !y(r) {
			return false
		}
	}
	return true
}

func (w *enterprise) Source(stream uint64) Source {
	return &enterpriseSource{w: w, r: w.rng(stream), churn: churn{stream: stream}}
}

type enterpriseSource struct {
	w     *enterprise
	r     *rand.Rand
	churn churn
}

// employee picks an employee uniformly: big enterprises get most requests.
func (s *enterpriseSource) employee() (k, i uint64) {
	g := s.r.Uint64N(s.w.employees)
	k = s.w.entOfEmployee(g)
	return k, g - s.w.ents[k].first
}

// other picks an employee of an enterprise other than k, if there is one.
func (s *enterpriseSource) other(k uint64) (uint64, uint64) {
	for range 8 {
		if ko, io := s.employee(); ko != k {
			return ko, io
		}
	}
	ko := (k + 1) % uint64(len(s.w.ents))
	return ko, s.r.Uint64N(s.w.ents[ko].n)
}

// pick returns a uniform element of xs (xs non-empty).
func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func expect(b bool) Expect {
	if b {
		return ExpectAllowed
	}
	return ExpectDenied
}

func (s *enterpriseSource) Next(op Op) Request {
	switch op {
	case OpCheck:
		return s.check()
	case OpLookupResources:
		return s.lookupResources()
	case OpLookupSubjects:
		return s.lookupSubjects()
	}
	// A new hire joins a department, and leaves again with the next write.
	w := s.w
	k, i := s.employee()
	d := w.deptOf(k, i)
	return s.churn.next(func(name string) []tuple.Relationship {
		x := w.ent(k) + "-" + name
		return []tuple.Relationship{
			rel("department", w.dept(k, d), "member", "employee", x),
			rel("employee", x, "enterprise", "enterprise", w.ent(k)),
		}
	})
}

func (s *enterpriseSource) check() Request {
	w, r := s.w, s.r
	k, i := s.employee()
	p := &w.ents[k]
	obj := func(typ, id string) tuple.ObjectRef { return tuple.ObjectRef{Type: typ, ID: id} }
	req := func(o tuple.ObjectRef, perm string, ks, is uint64, allowed bool) Request {
		return Request{Op: OpCheck, Resource: o, Permission: perm, Subject: w.empRef(ks, is), Expect: expect(allowed)}
	}
	switch n := r.IntN(100); {
	case n < 25: // colleagues message each other
		j := r.Uint64N(p.n)
		return req(obj("employee", w.emp(k, i)), "can_message", k, j, true)
	case n < 30 && len(w.links) > 0: // across a link, between grantees
		l := r.Uint64N(uint64(len(w.links)))
		a, b := w.links[l].ends[0], w.links[l].ends[1]
		ia, ib := w.grantee(l, 0, r.Uint64N(w.grants(l, 0))), w.grantee(l, 1, r.Uint64N(w.grants(l, 1)))
		if r.IntN(2) == 0 {
			a, b, ia, ib = b, a, ib, ia
		}
		return req(obj("employee", w.emp(a, ia)), "can_message", b, ib, w.canMessage(a, ia, b, ib))
	case n < 45: // who may view a customer record
		c := r.Uint64N(p.customers)
		cu := w.customer(k, c)
		var subj uint64
		switch m := r.IntN(10); {
		case m < 3:
			subj = cu.holder
		case m < 4:
			subj = w.regionViewer(k, cu.region, uint64(r.IntN(2)))
		case m < 5:
			subj = r.Uint64N(p.admins + 1)
		case m < 6 && cu.hasRep:
			subj = cu.rep
		case m < 7: // a manager of the owning department or one above it
			for d := w.custOwner(k, c); ; {
				if x, ok := w.deptManager(k, d); ok {
					subj = x
					break
				}
				par, ok := w.deptParent(k, d)
				if !ok {
					subj = i
					break
				}
				d = par
			}
		case m < 9:
			subj = i
		default:
			ko, io := s.other(k)
			return req(obj("crm_customer", w.cust(k, c)), "view", ko, io, ko == k && w.canViewCustomer(k, c, io))
		}
		return req(obj("crm_customer", w.cust(k, c)), "view", k, subj, w.canViewCustomer(k, c, subj))
	case n < 55: // who may edit it
		c := r.Uint64N(p.customers)
		cu := w.customer(k, c)
		subj := i
		if m := r.IntN(10); m < 4 && cu.hasRep {
			subj = cu.rep
		} else if m < 7 {
			subj = cu.holder
		}
		return req(obj("crm_customer", w.cust(k, c)), "edit", k, subj, w.canEditCustomer(k, c, subj))
	case n < 65: // a scoped admin manages a department (or a sibling's)
		d := r.Uint64N(p.depts)
		var admins []uint64
		for a := d; ; {
			if x, ok := w.deptAdmin(k, a); ok {
				admins = append(admins, x)
			}
			par, ok := w.deptParent(k, a)
			if !ok {
				break
			}
			a = par
		}
		subj := i
		if len(admins) > 0 && r.IntN(2) == 0 {
			subj = pick(r, admins)
		} else if x, ok := w.deptAdmin(k, r.Uint64N(p.depts)); ok {
			subj = x
		}
		return req(obj("department", w.dept(k, d)), "manage", k, subj, w.canManageDept(k, d, subj))
	case n < 75 && len(w.links) > 0: // may a grantee use a link, or send a file over it
		l := r.Uint64N(uint64(len(w.links)))
		side := r.IntN(2)
		ks := w.links[l].ends[side]
		is := w.grantee(l, side, r.Uint64N(w.grants(l, side)))
		if r.IntN(4) == 0 {
			size := int64(1 << 20)
			if r.IntN(4) == 0 {
				size = 50 << 20 // over the usual cap
			}
			q := req(obj("link", w.link(l)), "use_file_transfer", ks, is, w.canTransfer(l, side, is, size))
			q.Context = map[string]any{"size": size}
			return q
		}
		return req(obj("link", w.link(l)), "usable_by", ks, is, w.usable(l, side, is))
	case n < 85: // internal messaging: members, and outsiders
		if r.IntN(5) == 0 {
			ko, io := s.other(k)
			return req(obj("enterprise", w.ent(k)), "message_internal", ko, io, ko == k)
		}
		return req(obj("enterprise", w.ent(k)), "message_internal", k, i, true)
	case n < 90: // module settings
		m := r.IntN(len(modules))
		subj := i
		if a, ok := w.moduleAdmin(k, m); ok && r.IntN(2) == 0 {
			subj = a
		}
		ma, ok := w.moduleAdmin(k, m)
		return req(obj("module", w.module(k, m)), "configure", k, subj, w.isAdmin(k, subj) || (ok && ma == subj))
	case n < 95: // licence seats, with the caller's clock
		q := req(obj("license", w.license(k)), "can_use", k, i, w.canUseLicense(k, i))
		q.Context = map[string]any{"now": checkNow}
		return q
	}
	// Delegations: the delegate, the owner, or someone else.
	j := r.Uint64N(p.delegations)
	d := w.delegation(k, j)
	ks, is := k, i
	switch r.IntN(3) {
	case 0:
		is = d.owner
	case 1:
		if d.toOrg {
			ks = d.who
			is = r.Uint64N(w.ents[ks].n)
		} else {
			is = d.who
		}
	}
	return req(obj("delegation", w.deleg(k, j)), "manage_orders", ks, is, w.canManageOrders(k, j, ks, is))
}

func (s *enterpriseSource) lookupResources() Request {
	w, r := s.w, s.r
	k, i := s.employee()
	p := &w.ents[k]
	lr := func(typ, perm string, subj uint64) Request {
		return Request{Op: OpLookupResources, ResourceType: typ, Permission: perm, Subject: w.empRef(k, subj)}
	}
	switch n := r.IntN(100); {
	case n < 40: // which customers can this sales rep edit
		cu := w.customer(k, r.Uint64N(p.customers))
		subj := i
		if cu.hasRep {
			subj = cu.rep
		}
		return lr("crm_customer", "edit", subj)
	case n < 70: // which customers can a regional viewer see
		return lr("crm_customer", "view", w.regionViewer(k, r.Uint64N(p.regions), 0))
	case n < 90: // which departments does this admin manage
		if a, ok := w.deptAdmin(k, r.Uint64N(p.depts)); ok {
			return lr("department", "manage", a)
		}
		return lr("department", "manage", i)
	}
	return lr("link", "usable_by", i)
}

func (s *enterpriseSource) lookupSubjects() Request {
	w, r := s.w, s.r
	k, _ := s.employee()
	p := &w.ents[k]
	ls := func(typ, id, perm string) Request {
		return Request{Op: OpLookupSubjects, Resource: tuple.ObjectRef{Type: typ, ID: id}, Permission: perm, SubjectType: "employee"}
	}
	switch n := r.IntN(100); {
	case n < 50: // who can view this customer
		return ls("crm_customer", w.cust(k, r.Uint64N(p.customers)), "view")
	case n < 80 || len(w.links) == 0: // who is in this department
		return ls("department", w.dept(k, r.Uint64N(p.depts)), "member")
	}
	return ls("link", w.link(r.Uint64N(uint64(len(w.links)))), "usable_by")
}
