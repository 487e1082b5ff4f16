// Package pebblestore is Pemba's embedded default datastore: a store.Store
// on one Pebble LSM database. It is the only package that imports Pebble.
//
// # Keys
//
// Each relationship version is written twice, under a forward key
// (resource first, for Check and Expand) and a reverse key (subject first,
// for LookupResources), each ending in the complemented revision so that
// the newest version of a tuple sorts first:
//
//	'f' resType 0 resID 0 relation 0 subjType 0 subjID 0 subjRel 0 ^rev
//	'r' subjType 0 subjID 0 subjRel 0 resType 0 relation 0 resID 0 ^rev
//
// Live versions that expire are also listed, by expiration, in the expiry
// index under 'x'. Schema texts live under 's' ^rev, change sets under
// 'c' rev seq, and metadata (format version, store ID, head, GC horizon)
// under 'm'. keys.go
// and value.go document the byte layouts; docs/storage.md draws them.
//
// # Visibility
//
// A reader at revision R sees, for each tuple key, the newest version with
// revision <= R, unless that version is a tombstone. A point lookup is one
// bounded seek to tupleKey + ^R. Update serialises writers, writes the
// index entries, the change set and the new head in one batch, and
// publishes the head only once the batch is durable: writers waiting for
// durability share one fsync of the write-ahead log (group commit).
//
// # Garbage collection
//
// GC moves the horizon to the newest revision older than the GC window and
// removes versions no reader at or above it can see. The horizon is
// persisted before anything is deleted, and queries check it after taking
// their Pebble iterator, so a query never sees a half-collected revision:
// a reader whose revision falls below a moving horizon gets
// store.ErrRevisionCompacted from its next query, and a query already
// running finishes on its consistent iterator view. GC also walks the
// expiry index up to now - GCWindow and removes relationships that had
// expired by then (see store.GarbageCollector).
//
// # Bulk import
//
// Import writes one new revision in large batches, reserving the revision
// first and using the changelog chunks as an undo list, so that a crash or
// error mid-import never leaves visible partial data.
//
// # Disk faults
//
// A failed write or fsync of the write-ahead log (a full disk, an I/O
// error) fails the store, not the process (fault.go): the write being
// synced returns store.ErrCommitUnknown, later writes store.ErrUnavailable
// until the store is reopened; reads at published revisions go on.
// crashfs_test.go crashes the store at seeded points on Pebble's
// crash-simulating filesystem and checks what reopening recovers.
//
// # Checkpoints
//
// Checkpoint (store.Checkpointer, for online backups) makes a Pebble
// checkpoint in a "pemba-checkpoint-*" directory inside the data
// directory: hard links to the table files, the write-ahead log flushed
// and copied. It reopens the copy as a store, which rolls back an import
// caught half-written, to report its head, ID and schema. Open removes
// checkpoint directories a dead process left.
//
// # Format
//
// The key and value format is versioned (meta key "mformat"); Open refuses
// a directory written in a newer format with ErrFormatTooNew.
package pebblestore
