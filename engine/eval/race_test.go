//go:build race

package eval

// raceEnabled shrinks the differential test under the race detector, which
// slows it about tenfold; the concurrency it checks is the same.
const raceEnabled = true
