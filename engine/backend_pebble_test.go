package engine_test

// pebbleBackend returns the Pebble backend for the domain test, or an entry
// without open while pebblestore has not landed.
func pebbleBackend() backend {
	return backend{name: "pebblestore"}
}
