//go:build !invariants

package memstore

// invariants enables checkInvariants after every commit and GC; build with
// -tags invariants.
const invariants = false
