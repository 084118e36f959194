package broker

import (
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/spuff-dev/spuff/app/audit"
)

// floodWindow is how long a shed's repeated refusals are held so that one
// audit line answers for all of them. A shed refused now and then is not
// held at all: only a refusal that follows another of its kind within the
// window waits.
const floodWindow = 20 * time.Millisecond

// floodIDs bounds the ids a counted line lists; the rest are in its range.
const floodIDs = 8

// floods coalesces one shed's refusals over its rate (RATE_LIMITED, from
// the rate limit, the replay memory's cap or the bus's in-flight cap)
// into counted audit lines, so that a shed flooding the broker makes it
// write a line a window rather than a line (and a flush) a request. The
// property that every answer's line is written before the answer leaves
// holds: a held refusal is answered only once the line that counts it is
// written, and answered as denied by the audit log if that write fails.
type floods struct {
	write func(audit.Record) error

	mu   sync.Mutex
	keys map[string]*floodKey // by the refusal's detail: a handful
}

type floodKey struct {
	last time.Time   // when this kind's last line was written
	open *floodBatch // the refusals waiting for the next line, if any
}

// floodBatch is one counted line in the making.
type floodBatch struct {
	rec      audit.Record
	min, max string
	done     chan struct{}
	err      error
}

func newFloods(write func(audit.Record) error) *floods {
	return &floods{write: write, keys: map[string]*floodKey{}}
}

// audit writes rec's line, or counts rec (the request with this id, as
// sent) into the next line of its kind, and returns once that line is
// written, with the write's error.
func (f *floods) audit(rec audit.Record, id string) error {
	now := time.Now()
	f.mu.Lock()
	k := f.keys[rec.Detail]
	if k == nil {
		k = &floodKey{}
		f.keys[rec.Detail] = k
	}
	if k.open == nil && now.Sub(k.last) >= floodWindow {
		k.last = now
		f.mu.Unlock()
		return f.write(rec)
	}
	b := k.open
	if b == nil {
		b = &floodBatch{rec: rec, done: make(chan struct{})}
		b.rec.ID = ""
		k.open = b
		time.AfterFunc(floodWindow, func() { f.flush(k, b) })
	} else if b.rec.NS != rec.NS || b.rec.Op != rec.Op {
		// A line answers for one shed and one kind of refusal; what the
		// refused requests asked for may differ.
		if b.rec.NS != rec.NS {
			b.rec.NS = "*"
		}
		if b.rec.Op != rec.Op {
			b.rec.Op = "*"
		}
	}
	b.add(id)
	f.mu.Unlock()
	<-b.done
	return b.err
}

// add counts a request with this id into the batch.
func (b *floodBatch) add(id string) {
	if u, err := uuid.Parse(id); err == nil && len(id) == 36 {
		id = u.String() // lowercase, so that ids compare in time order
	} else {
		id = printable(id)
	}
	b.rec.Count++
	if len(b.rec.IDs) < floodIDs {
		b.rec.IDs = append(b.rec.IDs, id)
	}
	if b.min == "" || id < b.min {
		b.min = id
	}
	if id > b.max {
		b.max = id
	}
}

// flush writes b's line and then releases the requests it counts.
func (f *floods) flush(k *floodKey, b *floodBatch) {
	f.mu.Lock()
	if k.open == b {
		k.open = nil
	}
	k.last = time.Now()
	f.mu.Unlock()
	rec := b.rec
	rec.TS = time.Now().UTC()
	if rec.Count == 1 {
		rec.ID, rec.Count, rec.IDs = rec.IDs[0], 0, nil
	} else {
		rec.Detail = fmt.Sprintf("%s, ×%d within %s", rec.Detail, rec.Count, floodWindow)
		if rec.Count > len(rec.IDs) {
			rec.IDRange = [2]string{b.min, b.max}
		}
	}
	b.err = f.write(rec)
	close(b.done)
}
