package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/bus/bustest"
)

// swapFenceFile points the fence's appends at f, returning what it held.
func swapFenceFile(b *Broker, f *os.File) *os.File {
	b.fence.mu.Lock()
	defer b.fence.mu.Unlock()
	old := b.fence.f
	b.fence.f = f
	return old
}

// A fence that cannot be written or flushed refuses only the requests that
// need a new mark, says so in FenceState, and heals once a line is again
// written and flushed, by a request or by the flusher's probe. The disk is made to fail by pointing the fence's
// appends at /dev/full (every write fails) and at a pipe (writes work,
// fsync does not).
func TestFailingFenceRefusesOnlyWhatNeedsAMarkAndHeals(t *testing.T) {
	fence := filepath.Join(t.TempDir(), "replay-fence")
	fast := func(c *config.Config) { c.Limits = config.Limits{RequestsPerSecond: 1000, Burst: 1000} }
	f := newFixtureWith(t, fast, func(o *Options) { o.FencePath = fence })
	f.b.fence.mu.Lock()
	f.b.fence.probe = 20 * time.Millisecond
	f.b.fence.mu.Unlock()
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	at := func(d time.Duration) *bus.Envelope { return bustest.Ping(bustest.IDAt(time.Now().Add(d))) }
	if r := g.ask(at(30 * time.Second)); r.Error != nil {
		t.Fatalf("an id 30s ahead: %v", r.Error)
	}
	if s := f.b.FenceState(); s.Path != fence || s.Err != "" {
		t.Fatalf("a healthy fence's state: %+v", s)
	}

	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	defer full.Close()
	before := time.Now()
	real := swapFenceFile(f.b, full)
	r := g.ask(at(60 * time.Second))
	if code(r) != bus.CodeDenied || !strings.Contains(r.Error.Message, "could not record this request's time") {
		t.Fatalf("an id needing a mark the disk cannot take: %q (%v), want DENIED naming the fence", code(r), r.Error)
	}
	s := f.b.FenceState()
	if !strings.Contains(s.Err, "writing the replay fence") || s.Since.Before(before) {
		t.Fatalf("a fence whose write failed: %+v", s)
	}
	if r := g.ask(bustest.Ping(bus.NewID())); r.Error != nil {
		t.Fatalf("an id dated now, while the fence fails: %v", r.Error)
	}
	if r := g.ask(at(20 * time.Second)); r.Error != nil {
		t.Fatalf("an id behind the written mark, while the fence fails: %v", r.Error)
	}
	if r := g.ask(at(61 * time.Second)); code(r) != bus.CodeDenied {
		t.Fatalf("a second id needing a mark: %q, want DENIED", code(r))
	}
	if again := f.b.FenceState(); again.Since != s.Since {
		t.Fatalf("a second failure moved Since from %v to %v", s.Since, again.Since)
	}

	// Writes that work do not heal a fence the disk will not flush.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	swapFenceFile(f.b, pw)
	if r := g.ask(at(62 * time.Second)); code(r) != bus.CodeDenied {
		t.Fatalf("an id whose mark is written but cannot be flushed: %q, want DENIED", code(r))
	}
	if s := f.b.FenceState(); !strings.Contains(s.Err, "flushing the replay fence") {
		t.Fatalf("a fence that cannot be flushed: %+v", s)
	}

	swapFenceFile(f.b, real)
	if r := g.ask(at(63 * time.Second)); r.Error != nil {
		t.Fatalf("an id needing a mark once the disk works: %v", r.Error)
	}
	if s := f.b.FenceState(); s.Err != "" {
		t.Fatalf("the fence did not heal: %+v", s)
	}
	marks := map[string]int64{}
	if err := readFence(fence, marks); err != nil || marks["s1"] < time.Now().Add(62*time.Second).UnixMilli() {
		t.Fatalf("the healing mark is not in the file: %v (%v)", marks, err)
	}

	// The flusher's failure alone makes the fence fail too: the next mark
	// is refused until one is flushed.
	// (The flush of the mark just above may run after the swap and fail
	// first; either way only the flusher can have failed the fence.)
	swapFenceFile(f.b, pw)
	g.ask(at(70 * time.Second))
	deadline := time.Now().Add(5 * time.Second)
	for f.b.FenceState().Err == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := f.b.FenceState(); !strings.Contains(s.Err, "flushing the replay fence") {
		t.Fatalf("after the flusher failed: %+v", s)
	}
	if r := g.ask(at(75 * time.Second)); code(r) != bus.CodeDenied {
		t.Fatalf("an id needing a mark after a failed flush: %q, want DENIED", code(r))
	}

	// Once the disk takes writes again the fence heals by itself, with no
	// request that needs a mark, and the file it wrote still reads whole.
	swapFenceFile(f.b, real)
	deadline = time.Now().Add(5 * time.Second)
	for f.b.FenceState().Err != "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := f.b.FenceState(); s.Err != "" {
		t.Fatalf("no request came, and the fence did not heal: %+v", s)
	}
	clear(marks)
	if err := readFence(fence, marks); err != nil || marks["s1"] < time.Now().Add(62*time.Second).UnixMilli() {
		t.Fatalf("the fence file after probes: %v (%v)", marks, err)
	}
}

// A broker without a fence path reports a zero state.
func TestNoFenceHasAZeroState(t *testing.T) {
	f := newFixture(t, nil)
	if s := f.b.FenceState(); s != (FenceState{}) {
		t.Fatalf("state without a fence: %+v", s)
	}
}
