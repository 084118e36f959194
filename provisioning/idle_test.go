package provisioning

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/provisioning/state"
)

var t0 = time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)

func TestIdleDecide(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, c := range []struct {
		name    string
		v       idleView
		now     time.Duration
		want    idleAction
		wantEnd time.Duration // -1: never
	}{
		{"fresh", idleView{active: t0, timeout: 10 * time.Minute, notice: 2 * time.Minute}, time.Minute, idleNone, 10 * time.Minute},
		{"just before the notice", idleView{active: t0, timeout: 10 * time.Minute, notice: 2 * time.Minute}, 8*time.Minute - time.Second, idleNone, 10 * time.Minute},
		{"at the notice", idleView{active: t0, timeout: 10 * time.Minute, notice: 2 * time.Minute}, 8 * time.Minute, idleNotice, 10 * time.Minute},
		{"noticed, waiting", idleView{active: t0, noticed: at(8 * time.Minute), timeout: 10 * time.Minute, notice: 2 * time.Minute}, 9 * time.Minute, idleNone, 10 * time.Minute},
		{"noticed, at the end", idleView{active: t0, noticed: at(8 * time.Minute), timeout: 10 * time.Minute, notice: 2 * time.Minute}, 10 * time.Minute, idleEnd, 10 * time.Minute},
		{"activity after the notice", idleView{active: at(9 * time.Minute), noticed: at(8 * time.Minute), timeout: 10 * time.Minute, notice: 2 * time.Minute}, 9 * time.Minute, idleCancel, 19 * time.Minute},
		// Found idle long past the timeout (spuff-app was not running): the
		// notice still runs its full length.
		{"long idle, first seen", idleView{active: t0, timeout: 10 * time.Minute, notice: 2 * time.Minute}, 3 * time.Hour, idleNotice, 10 * time.Minute},
		{"long idle, noticed", idleView{active: t0, noticed: at(3 * time.Hour), timeout: 10 * time.Minute, notice: 2 * time.Minute}, 3*time.Hour + time.Minute, idleNone, 3*time.Hour + 2*time.Minute},
		{"long idle, notice served", idleView{active: t0, noticed: at(3 * time.Hour), timeout: 10 * time.Minute, notice: 2 * time.Minute}, 3*time.Hour + 2*time.Minute, idleEnd, 3*time.Hour + 2*time.Minute},
		{"no notice", idleView{active: t0, timeout: 10 * time.Minute}, 10 * time.Minute, idleEnd, 10 * time.Minute},
		{"no notice, before", idleView{active: t0, timeout: 10 * time.Minute}, 9 * time.Minute, idleNone, 10 * time.Minute},
		{"never", idleView{active: t0, notice: 2 * time.Minute}, 100 * time.Hour, idleNone, -1},
		{"turned off while noticed", idleView{active: t0, noticed: at(8 * time.Minute), notice: 2 * time.Minute}, 9 * time.Minute, idleCancel, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := c.v
			if got := v.decide(at(c.now)); got != c.want {
				t.Errorf("decide at %s: %d, want %d", c.now, got, c.want)
			}
			end, ends := v.end()
			if c.wantEnd < 0 && ends || c.wantEnd >= 0 && (!ends || !end.Equal(at(c.wantEnd))) {
				t.Errorf("end %v %v, want at %s", end, ends, c.wantEnd)
			}
		})
	}
}

// fakeGuest is a shed's idle clock as the host reads it, on a fake clock.
type fakeGuest struct {
	mu       sync.Mutex
	now      time.Time
	active   time.Time
	detached bool // the bus is cut: Ask fails
	told     []string
	audits   []AuditLine
	events   []IdleEvent
	detaches []string
}

func (g *fakeGuest) clock() time.Time { g.mu.Lock(); defer g.mu.Unlock(); return g.now }
func (g *fakeGuest) advance(d time.Duration) {
	g.mu.Lock()
	g.now = g.now.Add(d)
	g.mu.Unlock()
}
func (g *fakeGuest) touch() { g.mu.Lock(); g.active = g.now; g.mu.Unlock() }
func (g *fakeGuest) Audit(_ context.Context, l AuditLine) error {
	g.mu.Lock()
	g.audits = append(g.audits, l)
	g.mu.Unlock()
	return nil
}

func (g *fakeGuest) ops() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, a := range g.audits {
		out = append(out, a.Op+"/"+a.Result)
	}
	return strings.Join(out, " ")
}

// newIdler makes shed demo ready on the fake provider and an Idler over
// it, asked once a minute of the fake clock by the test.
func newIdler(t *testing.T, startStop bool, timeout, notice time.Duration, own *time.Duration) (*Idler, *fakeGuest, *fakeProvider, *state.DB) {
	t.Helper()
	m, fp, db, _ := newManager(t, fakeBoot{})
	fp.startOK = startStop
	if _, err := m.Up(context.Background(), UpRequest{Name: "demo", Provider: "fake", User: "dev", IdleTimeout: own}); err != nil {
		t.Fatal(err)
	}
	g := &fakeGuest{now: t0, active: t0}
	d, err := NewIdler(IdleOptions{
		Manager: m,
		Limits:  func(string) (time.Duration, time.Duration) { return timeout, notice },
		Ask: func(_ context.Context, name string) (time.Duration, error) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.detached {
				return 0, errors.New("not attached")
			}
			return g.now.Sub(g.active).Truncate(time.Second), nil
		},
		Tell: func(_ context.Context, name, text string) error {
			g.mu.Lock()
			g.told = append(g.told, name+": "+text)
			g.mu.Unlock()
			return nil
		},
		Detach: func(name string) { g.mu.Lock(); g.detaches = append(g.detaches, name); g.mu.Unlock() },
		Audit:  g,
		Events: func(e IdleEvent) { g.mu.Lock(); g.events = append(g.events, e); g.mu.Unlock() },
		Now:    g.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, g, fp, db
}

// minutes runs n rounds, one a minute of the fake clock.
func minutes(d *Idler, g *fakeGuest, n int) {
	for range n {
		g.advance(time.Minute)
		d.Round(context.Background())
	}
}

func rowState(t *testing.T, db *state.DB, name string) string {
	t.Helper()
	s, err := db.GetShed(context.Background(), name)
	if errors.Is(err, state.ErrNotFound) {
		return "gone"
	}
	if err != nil {
		t.Fatal(err)
	}
	return s.State
}

// TestIdlerWarnsThenStopsALocalShed: untouched, a local shed is warned at
// timeout − notice (audit line, event, a message in the shed) and stopped
// at timeout, its bus detached first.
func TestIdlerWarnsThenStopsALocalShed(t *testing.T) {
	d, g, _, db := newIdler(t, true, 10*time.Minute, 2*time.Minute, nil)
	d.Round(context.Background())
	if left, ok := d.Left("demo"); !ok || left != 10*time.Minute {
		t.Fatalf("left %s %v, want 10m", left, ok)
	}
	minutes(d, g, 7)
	if ops := g.ops(); ops != "" {
		t.Fatalf("after 7 idle minutes: %s", ops)
	}
	minutes(d, g, 1)
	if ops := g.ops(); ops != "idle_notice/ok" {
		t.Fatalf("after 8 idle minutes: %q, want the notice", ops)
	}
	if len(g.told) != 1 || !strings.Contains(g.told[0], "stop it in 2m0s") || !strings.HasPrefix(g.told[0], "demo: ") {
		t.Errorf("told the shed %q", g.told)
	}
	if e := g.events[0]; e.Op != OpIdleNotice || e.Left != 2*time.Minute || e.Action != "stop" || e.Shed != "demo" {
		t.Errorf("notice event %+v", e)
	}
	if left, ok := d.Left("demo"); !ok || left != 2*time.Minute {
		t.Errorf("left %s %v after the notice, want 2m", left, ok)
	}
	minutes(d, g, 1)
	if st := rowState(t, db, "demo"); st != state.Ready || g.ops() != "idle_notice/ok" {
		t.Fatalf("9 idle minutes: %s, %s", st, g.ops())
	}
	minutes(d, g, 1)
	if ops := g.ops(); ops != "idle_notice/ok idle_stop/ok" {
		t.Fatalf("after 10 idle minutes: %q", ops)
	}
	if st := rowState(t, db, "demo"); st != state.Stopped {
		t.Errorf("row %s, want stopped", st)
	}
	if len(g.detaches) != 1 || g.events[1].Op != OpIdleStop || g.events[1].Error != "" {
		t.Errorf("detaches %v, events %+v", g.detaches, g.events)
	}
	if _, ok := d.Left("demo"); ok {
		t.Error("a stopped shed still has idle time left")
	}
	minutes(d, g, 20)
	if ops := g.ops(); ops != "idle_notice/ok idle_stop/ok" {
		t.Errorf("a stopped shed was acted on again: %q", ops)
	}
}

// TestIdlerDestroysACloudShed: a shed its provider cannot stop is
// destroyed (a stopped cloud VM still bills).
func TestIdlerDestroysACloudShed(t *testing.T) {
	d, g, fp, db := newIdler(t, false, 10*time.Minute, 2*time.Minute, nil)
	minutes(d, g, 10)
	if ops := g.ops(); ops != "idle_notice/ok idle_destroy/ok" {
		t.Fatalf("ops %q", ops)
	}
	if st := rowState(t, db, "demo"); st != "gone" || len(fp.ms) != 0 {
		t.Errorf("row %s, machines %v", st, fp.ms)
	}
	if !strings.Contains(g.told[0], "destroy it in") {
		t.Errorf("told %q", g.told)
	}
}

// TestIdlerActivityLiftsTheNotice: activity during the notice (a credential
// request, a keystroke: the guest's clock moves) lifts it, audited; the
// clock starts again from that activity.
func TestIdlerActivityLiftsTheNotice(t *testing.T) {
	d, g, _, db := newIdler(t, true, 10*time.Minute, 2*time.Minute, nil)
	minutes(d, g, 8)
	g.advance(30 * time.Second)
	g.touch() // at 8m30s
	minutes(d, g, 2)
	if ops := g.ops(); ops != "idle_notice/ok idle_cancel/ok" {
		t.Fatalf("ops %q", ops)
	}
	if st := rowState(t, db, "demo"); st != state.Ready {
		t.Fatalf("row %s after activity in the notice", st)
	}
	// Notice again at 8m30s + 8m, end at 8m30s + 10m.
	minutes(d, g, 5) // 15m30s
	if ops := g.ops(); ops != "idle_notice/ok idle_cancel/ok" {
		t.Fatalf("ops at 15m30s %q", ops)
	}
	minutes(d, g, 1)
	if ops := g.ops(); ops != "idle_notice/ok idle_cancel/ok idle_notice/ok" {
		t.Fatalf("ops at 16m30s %q", ops)
	}
	minutes(d, g, 1)
	if st := rowState(t, db, "demo"); st != state.Ready {
		t.Fatalf("row %s at 17m30s", st)
	}
	minutes(d, g, 1)
	if ops := g.ops(); !strings.HasSuffix(ops, "idle_notice/ok idle_stop/ok") {
		t.Fatalf("ops at 18m30s %q", ops)
	}
}

// TestIdlerKeptBusyIsNeverWarned: a shed whose clock keeps moving is
// neither warned nor stopped.
func TestIdlerKeptBusyIsNeverWarned(t *testing.T) {
	d, g, _, db := newIdler(t, true, 10*time.Minute, 2*time.Minute, nil)
	for range 60 {
		minutes(d, g, 5)
		g.touch()
	}
	if ops := g.ops(); ops != "" || rowState(t, db, "demo") != state.Ready {
		t.Fatalf("a busy shed: %q", ops)
	}
}

// TestIdlerCutBusStillEnds: a shed whose bus is cut idles by the host's
// clock from its last known activity, so cutting the bus does not dodge
// the end.
func TestIdlerCutBusStillEnds(t *testing.T) {
	d, g, _, db := newIdler(t, true, 10*time.Minute, 2*time.Minute, nil)
	minutes(d, g, 3)
	g.touch() // active at 3m, seen, then the bus goes
	d.Round(context.Background())
	g.detached = true
	minutes(d, g, 7) // 10m: idle 7m by the host's clock
	if ops := g.ops(); ops != "" {
		t.Fatalf("ops at 10m %q", ops)
	}
	minutes(d, g, 1)
	if ops := g.ops(); ops != "idle_notice/ok" {
		t.Fatalf("ops at 11m %q", ops)
	}
	minutes(d, g, 2)
	if ops := g.ops(); ops != "idle_notice/ok idle_stop/ok" || rowState(t, db, "demo") != state.Stopped {
		t.Fatalf("ops at 13m %q", ops)
	}
}

// TestIdlerNeverAttachedStillEnds: a ready shed whose bus never answered
// idles from when the host first saw it.
func TestIdlerNeverAttachedStillEnds(t *testing.T) {
	d, g, _, db := newIdler(t, false, 10*time.Minute, 0, nil)
	g.detached = true
	d.Round(context.Background())
	minutes(d, g, 9)
	if rowState(t, db, "demo") != state.Ready {
		t.Fatal("ended early")
	}
	minutes(d, g, 1)
	if ops := g.ops(); ops != "idle_destroy/ok" || rowState(t, db, "demo") != "gone" {
		t.Fatalf("ops %q (no notice configured)", ops)
	}
}

// TestIdlerOwnTimeout: the row's own timeout (spuff up --idle-timeout)
// wins over the config's, 0 meaning never; a notice as long as the timeout
// is cut to a tenth of it.
func TestIdlerOwnTimeout(t *testing.T) {
	d, g, _, db := newIdler(t, true, 2*time.Hour, 10*time.Minute, new(time.Duration(0)))
	minutes(d, g, 300)
	if ops := g.ops(); ops != "" || rowState(t, db, "demo") != state.Ready {
		t.Fatalf("idle_timeout 0: %q", ops)
	}
	if _, ok := d.Left("demo"); ok {
		t.Error("a shed that never idles out has time left")
	}

	d, g, _, db = newIdler(t, true, 2*time.Hour, 10*time.Minute, new(10*time.Minute))
	minutes(d, g, 8)
	if ops := g.ops(); ops != "" {
		t.Fatalf("ops at 8m %q", ops)
	}
	minutes(d, g, 1) // the notice is a minute
	if ops := g.ops(); ops != "idle_notice/ok" {
		t.Fatalf("ops at 9m %q", ops)
	}
	minutes(d, g, 1)
	if ops := g.ops(); ops != "idle_notice/ok idle_stop/ok" || rowState(t, db, "demo") != state.Stopped {
		t.Fatalf("ops at 10m %q", ops)
	}
}

// TestIdlerConfigNever: provision.idle_timeout 0 never ends a shed.
func TestIdlerConfigNever(t *testing.T) {
	d, g, _, db := newIdler(t, false, 0, 10*time.Minute, nil)
	minutes(d, g, 600)
	if ops := g.ops(); ops != "" || rowState(t, db, "demo") != state.Ready {
		t.Fatalf("ops %q", ops)
	}
}

// TestIdlerRestartedShedStartsAfresh: a stopped shed started again is not
// ended on its old clock.
func TestIdlerRestartedShedStartsAfresh(t *testing.T) {
	d, g, _, db := newIdler(t, true, 10*time.Minute, 2*time.Minute, nil)
	minutes(d, g, 10)
	if rowState(t, db, "demo") != state.Stopped {
		t.Fatal("not stopped")
	}
	if err := d.o.Manager.Start(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	g.touch() // the guest's daemon starts with the boot
	minutes(d, g, 5)
	if ops := g.ops(); ops != "idle_notice/ok idle_stop/ok" || rowState(t, db, "demo") != state.Ready {
		t.Fatalf("ops %q", ops)
	}
}
