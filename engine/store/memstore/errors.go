package memstore

import "errors"

// errFinished reports use of a transaction after its Update returned.
var errFinished = errors.New("memstore: transaction already finished")
