package handlers

import (
	"context"
	"sync"
	"time"
)

// lookupCache remembers Slack look-ups (group members, profiles) for a while, because
// Slack rate-limits those methods and their answers change rarely.
type lookupCache[V any] struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry[V]
}

type cacheEntry[V any] struct {
	value   V
	fetched time.Time
}

func newLookupCache[V any](ttl time.Duration, now func() time.Time) *lookupCache[V] {
	return &lookupCache[V]{ttl: ttl, now: now, entries: map[string]cacheEntry[V]{}}
}

// get returns the entry for key, calling fetch when it is missing or older than the TTL.
// When fetch fails, it returns the error with the last entry fetched, if any: the caller
// decides whether that may stand in for the answer.
func (c *lookupCache[V]) get(ctx context.Context, key string, fetch func(ctx context.Context) (V, error)) (cacheEntry[V], error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && c.now().Sub(e.fetched) < c.ttl {
		return e, nil
	}
	v, err := fetch(ctx)
	if err != nil {
		return e, err
	}
	e = cacheEntry[V]{value: v, fetched: c.now()}
	c.mu.Lock()
	c.entries[key] = e
	c.mu.Unlock()
	return e, nil
}

// forget drops what is known of key.
func (c *lookupCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}
