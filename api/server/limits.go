package server

import (
	"github.com/pemba-authz/pemba/engine"
	"time"
)

// Limits enforced by the API layer, on top of the engine's own
// (engine.Limits: updates per write, preconditions, caveat context bytes,
// lookup results, bulk check items, read page size), which the server
// reads from the engine so both layers agree.
const (
	// MaxRecvMsgBytes bounds one request message (or one message of a
	// client stream). gRPC rejects larger ones with ResourceExhausted.
	MaxRecvMsgBytes = 4 << 20
	// MaxSendMsgBytes bounds one response message.
	MaxSendMsgBytes = 16 << 20
	// MaxSchemaBytes bounds the text of WriteSchema.
	MaxSchemaBytes = 4 << 20
	// MaxImportBatch bounds the relationships of one
	// ImportRelationshipsRequest message.
	MaxImportBatch = 1000
	// MaxExportBatch bounds, and is the default of, the relationships of
	// one ExportRelationshipsResponse message.
	MaxExportBatch = 1000
	// MaxDeleteLimit bounds optional_limit of DeleteRelationships.
	MaxDeleteLimit = 10_000
	// MaxWatchTypes bounds optional_object_types of Watch.
	MaxWatchTypes = 100
	// MaxWatchUpdates bounds the updates of one WatchResponse; a larger
	// transaction (a bulk import) is split over several messages.
	MaxWatchUpdates = 1000
	// MaxCursorLen bounds a cursor token (the engine's token package
	// enforces it when it decodes the cursor).
	MaxCursorLen = engine.MaxCursorLen

	// DefaultRequestTimeout is the deadline given to unary calls that
	// arrive without one (Config.RequestTimeout overrides it). Streams
	// get no default: Watch and exports legitimately run long.
	DefaultRequestTimeout = 30 * time.Second

	// streamWorkers is the number of goroutines that gRPC keeps to run
	// calls (grpc.NumStreamWorkers); a call that finds none idle gets its
	// own goroutine, as without the option. Reused goroutines keep their
	// grown stacks: a fresh goroutine per call grew its stack from the
	// minimum several times per Check, 15% of the server's CPU with 64
	// callers (3% with the workers, pprof of pemba serve).
	streamWorkers = 128
)
