package daemon

import (
	"sync/atomic"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// IdleClock is the shed's one idle clock: the newest of login-session
// activity, credential requests and heartbeats. agent/idle on the bus (what
// the host's idle shutdown asks) and the agent API's /idle both read it, so
// they cannot disagree.
type IdleClock struct {
	last   atomic.Int64 // unix nanos of the newest request or heartbeat
	logins func() time.Time
}

// NewIdleClock starts the clock at start. logins reports the newest
// login-session activity (nil: none is watched).
func NewIdleClock(start time.Time, logins func() time.Time) *IdleClock {
	c := &IdleClock{logins: logins}
	c.last.Store(start.UnixNano())
	return c
}

// Touch records activity at t: a credential request or a heartbeat. An
// older t than the newest recorded changes nothing.
func (c *IdleClock) Touch(t time.Time) {
	n := t.UnixNano()
	for {
		old := c.last.Load()
		if n <= old || c.last.CompareAndSwap(old, n) {
			return
		}
	}
}

// Since is the time of the newest activity.
func (c *IdleClock) Since() time.Time {
	last := time.Unix(0, c.last.Load())
	if c.logins != nil {
		if l := c.logins(); l.After(last) {
			last = l
		}
	}
	return last
}

// Idle is the agent/idle answer at now.
func (c *IdleClock) Idle(now time.Time) bus.IdleResponse {
	since := c.Since()
	return bus.IdleResponse{Seconds: max(0, int64(now.Sub(since).Seconds())), Since: since.UTC()}
}
