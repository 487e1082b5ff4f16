// Package cache is a concurrent, byte-bounded result cache.
//
// The evaluator keeps the answers of subproblems here across requests. The
// cache knows nothing about what it stores: keys are opaque strings that the
// caller builds (the evaluator puts the store revision first, so an answer is
// never served for another revision) and values are opaque. Each entry is
// charged its key length, the size the caller declares and a fixed overhead;
// when the total exceeds the budget the least recently used entries of the
// shard being written are evicted.
//
// The cache is split into shards by key hash, each with its own lock and
// LRU list, so concurrent requests rarely contend; eviction is therefore an
// approximation of global LRU. A nil *Cache is valid and caches nothing.
package cache
