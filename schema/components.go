package schema

// Components numbers the strongly connected components of a graph given
// as the edges out of each node 0..len(edges)-1
// (Tarjan's algorithm, with an explicit stack: a chain of 10,000
// relations must not recurse 10,000 deep). The analysis of the
// evaluator and the schema checker share it.
func Components(edges [][]int32) []int32 {
	n := len(edges)
	index := make([]int32, n) // 0: unvisited; else visit order + 1
	low := make([]int32, n)
	comp := make([]int32, n)
	onStack := make([]bool, n)
	var stack []int32
	type frame struct {
		v    int32
		next int // next edge of v to follow
	}
	var calls []frame
	counter, ncomp := int32(0), int32(0)
	for root := range n {
		if index[root] != 0 {
			continue
		}
		calls = append(calls[:0], frame{v: int32(root)})
		counter++
		index[root], low[root] = counter, counter
		stack = append(stack, int32(root))
		onStack[root] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			v := f.v
			if f.next < len(edges[v]) {
				w := edges[v][f.next]
				f.next++
				switch {
				case index[w] == 0:
					counter++
					index[w], low[w] = counter, counter
					stack = append(stack, w)
					onStack[w] = true
					calls = append(calls, frame{v: w})
				case onStack[w]:
					low[v] = min(low[v], index[w])
				}
				continue
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					if w == v {
						break
					}
				}
				ncomp++
			}
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].v
				low[p] = min(low[p], low[v])
			}
		}
	}
	return comp
}
