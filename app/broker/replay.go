package broker

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/spuff-dev/spuff/guest/bus"
)

// replayGuard rejects request ids seen before and ids whose UUIDv7 time is
// outside the skew window or before the broker started. Each shed has its
// own memory with its own cap, and a shed's ids are remembered only after
// its rate limit let them in, so no shed's traffic can fill another's.
//
// Ids are remembered as their 16 bytes, so one UUID in another letter
// case is the same id. An id made before the broker started is refused:
// this broker cannot know whether its predecessor answered it. So is an id
// dated at or before its shed's fence, the mark a predecessor left past
// the future-dated ids it accepted from that shed (fenceFile).
type replayGuard struct {
	skew    time.Duration
	maxIDs  int // per shed
	started time.Time
	fences  map[string]time.Time // read only after New

	mu    sync.Mutex
	sheds map[string]*seenIDs
}

// seenIDs is one shed's memory: two generations, rotated every 2×skew. An
// id older than the window is refused by its timestamp, so it need not be
// remembered; memory is bounded by what the window holds, and by maxIDs.
type seenIDs struct {
	mu       sync.Mutex
	cur, old map[uuid.UUID]struct{}
	rotated  time.Time
}

func newReplayGuard(skew time.Duration, maxIDs int, started time.Time) *replayGuard {
	return &replayGuard{skew: skew, maxIDs: maxIDs, started: started, sheds: map[string]*seenIDs{}}
}

// parse checks shed's id's form and time without remembering anything,
// and returns it with its time.
func (g *replayGuard) parse(shed, id string, now time.Time) (uuid.UUID, time.Time, error) {
	ts, err := bus.IDTime(id)
	if err != nil {
		return uuid.UUID{}, ts, bus.Errorf(bus.CodeBadRequest, "request id must be a UUIDv7: %v", err)
	}
	if d := now.Sub(ts); d > g.skew || d < -g.skew {
		return uuid.UUID{}, ts, bus.Errorf(bus.CodeReplayed, "request time is %s away from the host clock (allowed ±%s); check the shed's clock", d.Round(time.Second), g.skew)
	}
	if ts.Before(g.started.Truncate(time.Millisecond)) {
		return uuid.UUID{}, ts, bus.Errorf(bus.CodeReplayed, "request id %s was made before spuff-app started; retry", id)
	}
	if f, ok := g.fences[shed]; ok && !ts.After(f) {
		return uuid.UUID{}, ts, bus.Errorf(bus.CodeReplayed, "request id %s is dated no later than an id this shed used before spuff-app restarted; retry in %s", id, max(f.Sub(now), 0).Round(time.Second)+time.Second)
	}
	return uuid.MustParse(id), ts, nil
}

// remember records shed's id, or refuses it as seen before or over the cap.
func (g *replayGuard) remember(shed string, id uuid.UUID, now time.Time) error {
	g.mu.Lock()
	s := g.sheds[shed]
	if s == nil {
		s = &seenIDs{cur: map[uuid.UUID]struct{}{}, old: map[uuid.UUID]struct{}{}, rotated: now}
		g.sheds[shed] = s
	}
	g.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.rotated) > 2*g.skew {
		s.old, s.cur, s.rotated = s.cur, make(map[uuid.UUID]struct{}, len(s.cur)), now
	}
	if _, dup := s.cur[id]; dup {
		return bus.Errorf(bus.CodeReplayed, "request id %s was already used", id)
	}
	if _, dup := s.old[id]; dup {
		return bus.Errorf(bus.CodeReplayed, "request id %s was already used", id)
	}
	if len(s.cur)+len(s.old) >= g.maxIDs {
		return bus.Errorf(bus.CodeRateLimited, "shed %q has too many requests in the replay window", shed)
	}
	s.cur[id] = struct{}{}
	return nil
}
