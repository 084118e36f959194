package sshkeys

import (
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh/agent"
)

// keyCache remembers the keys the backend last listed, so that a sign
// needs no list round trip of its own.
type keyCache struct {
	backend agent.ExtendedAgent
	log     *slog.Logger

	refreshMu sync.Mutex
	mu        sync.Mutex
	keys      map[string]*agent.Key // wire blob → key, as the backend last listed them
	at        time.Time
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
	k, at := c.keys[string(blob)], c.at
	c.mu.Unlock()
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
	return c.keys[string(blob)]
}

func (c *keyCache) refresh() ([]*agent.Key, error) {
	keys, err := c.backend.List()
	if err != nil {
		return nil, err
	}
	m := make(map[string]*agent.Key, len(keys))
	for _, k := range keys {
		m[string(k.Blob)] = k
	}
	c.mu.Lock()
	c.keys, c.at = m, time.Now()
	c.mu.Unlock()
	return keys, nil
}

func (c *keyCache) invalidate() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}
