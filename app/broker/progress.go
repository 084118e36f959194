package broker

import (
	"sync"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// progressEvery is how often a request still being worked on says so.
const progressEvery = time.Second

// progress sends a progress frame for a request every progressEvery until
// stopped, from a timer: a request answered within the first second never
// wakes anything.
type progress struct {
	r       *bus.Request
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

func startProgress(r *bus.Request) *progress {
	p := &progress{r: r}
	p.mu.Lock()
	p.t = time.AfterFunc(progressEvery, p.tick)
	p.mu.Unlock()
	return p
}

func (p *progress) tick() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = p.r.Progress("still working on it")
	p.mu.Lock()
	if !p.stopped {
		p.t.Reset(progressEvery)
	}
	p.mu.Unlock()
}

// stop ends the frames; none is sent after stop returns but one already
// being written.
func (p *progress) stop() {
	p.mu.Lock()
	p.stopped = true
	p.t.Stop()
	p.mu.Unlock()
}
