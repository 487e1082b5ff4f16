// Package workload generates benchmark data sets and request mixes for Pemba.
//
// A Workload is a schema, a stream of relationships valid under it, and a
// source of requests (Check, LookupResources, LookupSubjects, writes) whose
// answers are plausible: mostly subjects that exist and are allowed, some
// denials. Everything is a pure function of (workload, scale, seed): the
// same inputs yield the same relationships in the same order, and the same
// request sequence per stream, on every machine.
//
// Data sets are derived, not stored: every fact (which department employee
// 17 of enterprise 3 works in, whether link 9 is approved) is computed from
// a hash of the seed and the entity's numbers. The relationship stream never
// holds the data set in memory, so the large scale (~10M relationships)
// streams in constant memory, and request sources recompute the facts they
// need instead of looking them up.
//
// # Workloads
//
//   - enterprise: the messaging and CRM model of examples/enterprise (see
//     enterprise.go), with skewed enterprise sizes.
//   - deep-chain: groups nested 30 deep.
//   - wide-group: one group with up to 100,000 direct members.
//   - wide-arrow: a document with up to 10,000 parent folders.
package workload

import (
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"strings"

	"github.com/pemba-authz/pemba/engine/tuple"
)

// ErrUnknown is wrapped by errors for an unknown workload, scale or
// operation name.
var ErrUnknown = errors.New("workload: unknown name")

// Scale is a named data set size.
type Scale uint8

// Scales. Each is about ten to a hundred times the previous one.
const (
	Small  Scale = iota + 1 // about 10 thousand relationships
	Medium                  // about 1 million relationships
	Large                   // about 10 million relationships
)

// Target returns the approximate number of relationships a workload yields
// at scale s.
func (s Scale) Target() int {
	switch s {
	case Small:
		return 10_000
	case Medium:
		return 1_000_000
	case Large:
		return 10_000_000
	}
	return 0
}

func (s Scale) String() string {
	switch s {
	case Small:
		return "small"
	case Medium:
		return "medium"
	case Large:
		return "large"
	}
	return fmt.Sprintf("Scale(%d)", uint8(s))
}

// ParseScale reads "small", "medium" or "large".
func ParseScale(s string) (Scale, error) {
	for _, sc := range []Scale{Small, Medium, Large} {
		if s == sc.String() {
			return sc, nil
		}
	}
	return 0, fmt.Errorf("%w: scale %q (want small, medium or large)", ErrUnknown, s)
}

// Op is the kind of a request.
type Op uint8

// Operations. NumOps is their count, for arrays indexed by Op.
const (
	OpCheck Op = iota
	OpLookupResources
	OpLookupSubjects
	OpWrite
	NumOps
)

var opNames = [NumOps]string{"check", "lookup-resources", "lookup-subjects", "write"}

func (o Op) String() string {
	if o < NumOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// ParseOp reads an operation name as String writes it.
func ParseOp(s string) (Op, error) {
	for i, n := range opNames {
		if s == n {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("%w: operation %q (want one of %s)", ErrUnknown, s, strings.Join(opNames[:], ", "))
}

// Expect is what a request's generator knows about its answer.
type Expect uint8

// Expectations. Only Check requests carry one other than ExpectUnknown.
const (
	ExpectUnknown Expect = iota
	ExpectAllowed
	ExpectDenied
)

func (e Expect) String() string {
	switch e {
	case ExpectAllowed:
		return "allowed"
	case ExpectDenied:
		return "denied"
	}
	return "unknown"
}

// Update is one change of a write request.
type Update struct {
	Delete       bool
	Relationship tuple.Relationship
}

// Request is one benchmark request. Which fields are set depends on Op:
//
//   - OpCheck: Resource, Permission, Subject (and Expect).
//   - OpLookupResources: ResourceType, Permission, Subject.
//   - OpLookupSubjects: Resource, Permission, SubjectType.
//   - OpWrite: Updates.
type Request struct {
	Op           Op
	Resource     tuple.ObjectRef
	ResourceType string
	Permission   string
	Subject      tuple.SubjectRef
	SubjectType  string
	Updates      []Update
	// Context supplies caveat parameters (Check only), as the service would.
	Context map[string]any
	// Expect is the answer a Check should get. Writes never change the
	// facts an expectation rests on, so it holds at every revision.
	Expect Expect
}

func (r Request) String() string {
	switch r.Op {
	case OpCheck:
		return fmt.Sprintf("check %s#%s@%s (expect %s)", r.Resource, r.Permission, r.Subject, r.Expect)
	case OpLookupResources:
		return fmt.Sprintf("lookup-resources %s#%s@%s", r.ResourceType, r.Permission, r.Subject)
	case OpLookupSubjects:
		return fmt.Sprintf("lookup-subjects %s#%s@%s", r.Resource, r.Permission, r.SubjectType)
	case OpWrite:
		var b strings.Builder
		b.WriteString("write")
		for _, u := range r.Updates {
			op := " touch "
			if u.Delete {
				op = " delete "
			}
			b.WriteString(op)
			b.WriteString(u.Relationship.String())
		}
		return b.String()
	}
	return r.Op.String()
}

// Source generates requests for one worker. It is not safe for concurrent
// use: give every worker its own (Workload.Source with its worker number).
type Source interface {
	// Next returns a request of kind op.
	Next(op Op) Request
}

// Workload is a schema, the relationships of a data set and a source of
// requests over it.
type Workload interface {
	// Name is the workload's name, as New takes it.
	Name() string
	// Scale and Seed are the parameters the data set was derived from.
	Scale() Scale
	Seed() uint64
	// Schema is the schema text the relationships are valid under.
	Schema() string
	// Relationships streams the data set; every call yields the same
	// relationships in the same order, each once.
	Relationships() iter.Seq2[tuple.Relationship, error]
	// Size is the number of relationships Relationships yields.
	Size() int
	// Source returns the request source of worker stream; sources of
	// different streams yield different sequences.
	Source(stream uint64) Source
}

// Names lists the workloads New knows.
func Names() []string {
	return []string{"enterprise", "deep-chain", "wide-group", "wide-arrow"}
}

// New returns the named workload at a scale, derived from seed.
func New(name string, scale Scale, seed uint64) (Workload, error) {
	if scale.Target() == 0 {
		return nil, fmt.Errorf("%w: scale %d", ErrUnknown, scale)
	}
	b := base{scale: scale, seed: seed}
	switch name {
	case "enterprise":
		return newEnterprise(b), nil
	case "deep-chain":
		return newDeepChain(b), nil
	case "wide-group":
		return newWideGroup(b), nil
	case "wide-arrow":
		return newWideArrow(b), nil
	}
	return nil, fmt.Errorf("%w: workload %q (want one of %s)", ErrUnknown, name, strings.Join(Names(), ", "))
}

// base carries the parameters every workload has.
type base struct {
	scale Scale
	seed  uint64
}

func (b base) Scale() Scale { return b.scale }
func (b base) Seed() uint64 { return b.seed }

// rng returns the random source of request stream n.
func (b base) rng(n uint64) *rand.Rand {
	return rand.New(rand.NewPCG(b.seed, hash2(0x5eed, n)))
}

// hash2 and hash3 mix numbers into a well-distributed 64-bit value
// (splitmix64 steps), the source of every derived fact.
func hash2(a, b uint64) uint64 { return mix(mix(a) ^ b) }

func hash3(a, b, c uint64) uint64 { return mix(mix(mix(a)^b) ^ c) }

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// chance reports whether a derived value h falls in the lowest percent of
// its range.
func chance(h uint64, percent uint64) bool { return h%100 < percent }

// rel builds a relationship to a plain object subject.
func rel(resType, resID, relation, subType, subID string) tuple.Relationship {
	return tuple.Relationship{
		Resource: tuple.ObjectRef{Type: resType, ID: resID},
		Relation: relation,
		Subject:  tuple.SubjectRef{Type: subType, ID: subID},
	}
}

// relSet builds a relationship to a subject set (type:id#relation).
func relSet(resType, resID, relation, subType, subID, subRel string) tuple.Relationship {
	r := rel(resType, resID, relation, subType, subID)
	r.Subject.Relation = subRel
	return r
}

// id formats prefix followed by n in base 36, the compact IDs every
// workload uses.
func id(prefix string, n uint64) string {
	var buf [32]byte
	b := append(buf[:0], prefix...)
	return string(appendBase36(b, n))
}

func appendBase36(b []byte, n uint64) []byte {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var tmp [13]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[n%36]
		n /= 36
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
