package pebblestore

import (
	"log/slog"
)

// quietLogger drops log output in tests.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
