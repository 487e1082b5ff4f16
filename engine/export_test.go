package engine

import "context"

// SetNestedRebuildHook makes the rebuilds of e's nested-group index call
// hook at their stages without the lock ("loaded": the rows of the
// snapshot are written; "caught-up": after each catch-up round), in the
// rebuild's goroutine and with its context. Set it before the first
// rebuild.
func SetNestedRebuildHook(e *Engine, hook func(ctx context.Context, stage string)) {
	e.builder.hook = hook
}

// SetNestedRebuildLimits sets the rows per bulk load of a rebuild and its
// catch-up thresholds (see nestedbuild.go) until the returned function
// restores them.
func SetNestedRebuildLimits(loadRows, lockedSources, restartSources int) (restore func()) {
	l, k, r := nestedLoadRows, nestedLockedSources, nestedRestartSources
	nestedLoadRows, nestedLockedSources, nestedRestartSources = loadRows, lockedSources, restartSources
	return func() { nestedLoadRows, nestedLockedSources, nestedRestartSources = l, k, r }
}
