package bench

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pemba-authz/pemba/bench/workload"
)

// Mix is the weight of each operation in a run's request stream.
type Mix [workload.NumOps]int

// DefaultMix is check=90,lookup-resources=5,write=5.
var DefaultMix = Mix{workload.OpCheck: 90, workload.OpLookupResources: 5, workload.OpWrite: 5}

// ParseMix reads "check=90,lookup-resources=5,write=5". Operations left
// out weigh zero; at least one weight must be positive.
func ParseMix(s string) (Mix, error) {
	var m Mix
	total := 0
	for part := range strings.SplitSeq(s, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Mix{}, fmt.Errorf("%w: mix item %q is not op=weight", ErrUsage, part)
		}
		op, err := workload.ParseOp(name)
		if err != nil {
			return Mix{}, fmt.Errorf("%w: mix: %w", ErrUsage, err)
		}
		w, err := strconv.Atoi(weight)
		if err != nil || w < 0 {
			return Mix{}, fmt.Errorf("%w: mix weight %q of %s is not a non-negative integer", ErrUsage, weight, name)
		}
		m[op] = w
		total += w
	}
	if total == 0 {
		return Mix{}, fmt.Errorf("%w: mix %q has no positive weight", ErrUsage, s)
	}
	return m, nil
}

func (m Mix) String() string {
	var parts []string
	for op, w := range m {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", workload.Op(op), w))
		}
	}
	return strings.Join(parts, ",")
}

// picker draws operations with the mix's weights.
type picker struct {
	cum   [workload.NumOps]int
	total int
}

func newPicker(m Mix) picker {
	var p picker
	for op, w := range m {
		p.total += w
		p.cum[op] = p.total
	}
	return p
}

// pick maps n in [0, total) to an operation.
func (p *picker) pick(n int) workload.Op {
	for op, c := range p.cum {
		if n < c {
			return workload.Op(op)
		}
	}
	return workload.NumOps - 1
}
