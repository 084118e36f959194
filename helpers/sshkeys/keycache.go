package sshkeys

import (
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh/agent"
)

// keyCache remembers the keys the backend last listed, so that a sign
// needs no list round trip of its own, and their fingerprints, so that a
// sign with a key the backend holds computes none.
type keyCache struct {
	backend agent.ExtendedAgent
	log     *slog.Logger

	refreshMu sync.Mutex
	mu        sync.Mutex
	keys      map[string]*cachedKey // wire blob → key, as the backend last listed them
	at        time.Time
}

type cachedKey struct {
	*agent.Key
	fp   string // fingerprint(Blob)
	desc string // keyDesc(Blob)
}

// describe returns the fingerprint and description of a wire blob:
// remembered for a key the backend listed, computed for any other (a blob
// from the guest is remembered only once the backend lists it, so a shed
// cannot grow the cache).
func (c *keyCache) describe(blob []byte) (fp, desc string) {
	c.mu.Lock()
	k := c.keys[string(blob)]
	c.mu.Unlock()
	if k != nil {
		return k.fp, k.desc
	}
	return fingerprint(blob), keyDesc(blob)
}

const (
	keysStaleOnMiss  = 250 * time.Millisecond
	keysStaleOnFound = time.Minute
)

// lookup finds a key the backend holds, listing again when the key is
// missing from a list older than keysStaleOnMiss: a key just added to the
// host agent shows up on the next sign without a list round trip per sign.
func (c *keyCache) lookup(blob []byte) *agent.Key {
	c.mu.Lock()
	ck, at := c.keys[string(blob)], c.at
	c.mu.Unlock()
	var k *agent.Key
	if ck != nil {
		k = ck.Key
	}
	age := time.Since(at)
	if k != nil && age < keysStaleOnFound {
		return k
	}
	if k == nil && age < keysStaleOnMiss {
		return nil
	}
	// One list at a time: concurrent signs that all miss share its answer.
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.mu.Lock()
	fresh := c.at.After(at)
	c.mu.Unlock()
	if !fresh {
		if _, err := c.refresh(); err != nil {
			c.log.Warn("sshkeys: listing keys failed", "err", err)
			return k
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ck := c.keys[string(blob)]; ck != nil {
		return ck.Key
	}
	return nil
}

// refresh lists the backend's keys, in its order.
func (c *keyCache) refresh() ([]*cachedKey, error) {
	keys, err := c.backend.List()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	old := c.keys
	c.mu.Unlock()
	out := make([]*cachedKey, len(keys))
	m := make(map[string]*cachedKey, len(keys))
	for i, k := range keys {
		ck := &cachedKey{Key: k}
		if prev := old[string(k.Blob)]; prev != nil {
			ck.fp, ck.desc = prev.fp, prev.desc
		} else {
			ck.fp, ck.desc = fingerprint(k.Blob), keyDesc(k.Blob)
		}
		out[i] = ck
		m[string(k.Blob)] = ck
	}
	c.mu.Lock()
	c.keys, c.at = m, time.Now()
	c.mu.Unlock()
	return out, nil
}

func (c *keyCache) invalidate() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}
