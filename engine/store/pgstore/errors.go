package pgstore

import (
	"errors"
	"fmt"
)

// Sentinel errors of this package. Errors of the store interface (closed,
// compacted, ...) are the sentinels of package store.
var (
	// ErrNotMigrated: the database has no Pemba tables, or older ones than
	// this binary needs; run `pemba datastore migrate`.
	ErrNotMigrated = errors.New("pgstore: database schema not migrated")
	// ErrSchemaTooNew: the database was migrated by a newer Pemba.
	ErrSchemaTooNew = errors.New("pgstore: database schema too new")
	// ErrNotReplica: a read replica holds a different store than the
	// primary.
	ErrNotReplica = errors.New("pgstore: read replica is not a replica of this store")
)

// VersionError reports a database whose schema version Open refuses.
type VersionError struct {
	Found, Supported int // Found is 0 for a database without Pemba tables
}

func (e *VersionError) Error() string {
	if e.Found > e.Supported {
		return fmt.Sprintf("pgstore: database schema version %d is newer than this binary supports (%d); upgrade Pemba", e.Found, e.Supported)
	}
	return fmt.Sprintf("pgstore: database schema version %d, this binary needs %d; run `pemba datastore migrate --datastore-uri ...` first", e.Found, e.Supported)
}

// Is makes errors.Is match ErrNotMigrated or ErrSchemaTooNew.
func (e *VersionError) Is(target error) bool {
	if e.Found > e.Supported {
		return target == ErrSchemaTooNew
	}
	return target == ErrNotMigrated
}
