package broker

import (
	"sync"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// replayGuard rejects request ids seen before and ids whose UUIDv7 time is
// outside the skew window. Two generations of seen ids, rotated every
// 2×skew, keep memory bounded by what the window can hold: an id older than
// the window is refused by its timestamp, so it need not be remembered.
type replayGuard struct {
	skew     time.Duration
	maxIDs   int
	mu       sync.Mutex
	cur, old map[string]struct{}
	rotated  time.Time
}

func newReplayGuard(skew time.Duration, maxIDs int) *replayGuard {
	return &replayGuard{skew: skew, maxIDs: maxIDs, cur: map[string]struct{}{}, old: map[string]struct{}{}}
}

// check returns nil for a fresh id and records it.
func (g *replayGuard) check(id string, now time.Time) error {
	ts, err := bus.IDTime(id)
	if err != nil {
		return bus.Errorf(bus.CodeBadRequest, "request id must be a UUIDv7: %v", err)
	}
	if d := now.Sub(ts); d > g.skew || d < -g.skew {
		return bus.Errorf(bus.CodeReplayed, "request time is %s away from the host clock (allowed ±%s); check the shed's clock", d.Round(time.Second), g.skew)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.rotated) > 2*g.skew {
		g.old, g.cur, g.rotated = g.cur, make(map[string]struct{}, len(g.cur)), now
	}
	if _, dup := g.cur[id]; dup {
		return bus.Errorf(bus.CodeReplayed, "request id %s was already used", id)
	}
	if _, dup := g.old[id]; dup {
		return bus.Errorf(bus.CodeReplayed, "request id %s was already used", id)
	}
	if len(g.cur)+len(g.old) >= g.maxIDs {
		return bus.Errorf(bus.CodeRateLimited, "too many requests in the replay window")
	}
	g.cur[id] = struct{}{}
	return nil
}
