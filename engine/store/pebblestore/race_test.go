//go:build race

package pebblestore

// raceEnabled shrinks TestCrashFS under the race detector, which slows it
// about tenfold; the concurrency it checks is the same in every round.
const raceEnabled = true
