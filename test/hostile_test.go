package test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/bus/bustest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestHostileShedCannotStarveOthers: one shed floods requests, sends
// oversized fields and stops reading its answers, again on every
// connection the broker makes; meanwhile a healthy shed's pings keep
// succeeding with p99 under 100 ms, spuff-app stays under 100 MB, and every
// answer either shed read has its audit line.
func TestHostileShedCannotStarveOthers(t *testing.T) {
	h := harness.Start(t, harness.Options{Config: "limits:\n  requests_per_second: 200\n  burst: 200\n"})
	healthy := h.Guest(t, "healthy")
	bad := harness.NewHostile(t)
	h.MustSpuff(t, "attach", "hostile", bad.URL())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var peak atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the attacker, on each connection the broker makes
		defer wg.Done()
		c := bad.Conn(10 * time.Second)
		if c == nil {
			t.Error("the broker never connected to the hostile shed")
			return
		}
		harness.Flood(c, 20000)
		// Every request costs the shed its rate first; once the bucket
		// has refilled, oversized fields reach the check that refuses them.
		time.Sleep(time.Second)
		harness.Oversized(c, 40, 70<<10)
		bad.StopReading()
		// Until the broker drops it for not reading, and then on the
		// connection it makes next.
		harness.Flood(c, 100000)
		if c := bad.Conn(5 * time.Second); c != nil {
			harness.Flood(c, 20000)
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if r := h.RSS(); r > peak.Load() {
				peak.Store(r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	c := guestConn(t, healthy)
	const n = 400
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := c.Call(ctx, bus.NSAgent, bus.OpPing, nil, nil); err != nil {
			t.Fatalf("the healthy shed's ping failed under the hostile shed: %v", err)
		}
		lat = append(lat, time.Since(start))
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	p50, p99 := testenv.Percentiles(lat)
	t.Logf("healthy shed under attack: ping p50 %.0f µs, p99 %.0f µs; spuff-app peak RSS %.1f MB; %d answers read by the attacker",
		p50, p99, float64(peak.Load())/(1<<20), len(bad.Answers()))
	if p99 > 100_000 {
		t.Errorf("healthy ping p99 %.1f ms under attack, want < 100 ms", p99/1000)
	}
	if peak.Load() > 100<<20 {
		t.Errorf("spuff-app RSS peaked at %.1f MB, want < 100 MB", float64(peak.Load())/(1<<20))
	}

	// Every answer read has its line: the healthy shed's, by count (its
	// daemon makes the ids), the attacker's, by id: its own line, or one
	// of the counted lines its refusals over the rate share.
	time.Sleep(200 * time.Millisecond)
	var lines []audit.Record
	healthyOK := 0
	for _, r := range h.Audit(t) {
		switch r.Shed {
		case "hostile":
			lines = append(lines, r)
		case "healthy":
			if r.NS == bus.NSAgent && r.Op == bus.OpPing && r.Result == "ok" {
				healthyOK++
			}
		}
	}
	if healthyOK != n {
		t.Errorf("%d ok ping lines for the healthy shed, want %d", healthyOK, n)
	}
	answers := bad.Answers()
	if len(answers) == 0 {
		t.Fatal("the attacker read no answers; the test proves nothing")
	}
	missing, oversized, limited := auditCovers(lines, answers), 0, 0
	for _, code := range answers {
		switch code {
		case bus.CodeBadRequest:
			oversized++
		case bus.CodeRateLimited:
			limited++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d answers the attacker read have no audit line with their code", missing, len(answers))
	}
	counted := 0
	for _, r := range lines {
		if r.Code == bus.CodeRateLimited {
			counted += r.Requests()
		}
	}
	// The counts cover every refusal the attacker read (it stopped reading,
	// so it read fewer than were answered).
	if counted < limited {
		t.Errorf("RATE_LIMITED lines count %d requests, but the attacker read %d such answers", counted, limited)
	}
	if oversized == 0 {
		t.Error("no oversized request was answered BAD_REQUEST")
	}
}

// TestFutureIDRefusedAfterRestart: a shed's clock may run ahead of the
// host's by up to the skew, so an id it made can be dated after a restart
// of spuff-app that comes moments after the id was answered. Sent again
// after that restart, it is refused, as it would have been before; an id
// dated past every id the shed used before the restart still works.
func TestFutureIDRefusedAfterRestart(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	bad := harness.NewHostile(t)
	h.MustSpuff(t, "attach", "hostile", bad.URL())
	c := bad.Conn(10 * time.Second)
	if c == nil {
		t.Fatal("the broker never connected to the shed")
	}
	ahead := bustest.Ping(bustest.IDAt(time.Now().Add(90 * time.Second)))
	if code, ok := bad.Ask(c, ahead, 10*time.Second); !ok || code != "" {
		t.Fatalf("an id dated 90s ahead, first use: answered %v, code %q; want ok", ok, code)
	}

	h.Restart(t)
	if c = bad.Conn(60 * time.Second); c == nil {
		t.Fatal("the restarted broker never reconnected to the shed")
	}
	code, ok := bad.Ask(c, ahead, 10*time.Second)
	if !ok || code != bus.CodeReplayed {
		t.Fatalf("the same id after a restart: answered %v, code %q; want REPLAYED", ok, code)
	}
	later := bustest.Ping(bustest.IDAt(time.Now().Add(115 * time.Second)))
	if code, ok := bad.Ask(c, later, 10*time.Second); !ok || code != "" {
		t.Fatalf("an id dated after every id used before the restart: answered %v, code %q; want ok", ok, code)
	}
	replayed := false
	for _, r := range h.Audit(t) {
		if r.Shed == "hostile" && r.ID == ahead.ID && r.Code == bus.CodeReplayed {
			replayed = true
		}
	}
	if !replayed {
		t.Error("no REPLAYED audit line for the id sent again after the restart")
	}
	// The fence is reported where a developer looks, healthy here.
	var st api.Status
	if err := json.Unmarshal([]byte(h.MustSpuff(t, "status", "--json")), &st); err != nil || st.Fence == nil || st.Fence.Path != filepath.Join(h.Home, "replay-fence") || st.Fence.Failing() {
		t.Errorf("status --json's replay fence: %+v (%v)", st.Fence, err)
	}
	if out, _ := h.Spuff(t, "doctor"); !strings.Contains(out, "replay fence "+filepath.Join(h.Home, "replay-fence")) {
		t.Errorf("doctor does not check the replay fence:\n%s", out)
	}
}

// TestFloodDenialsShareCountedLines: a shed far over its rate has every
// request answered and counted in the audit log, but in a few lines rather
// than one per request: the broker holds its refusals a moment and writes
// one line for many before any of their answers leaves. Each answer is
// covered by a line with its code, and the counts add up to the requests.
func TestFloodDenialsShareCountedLines(t *testing.T) {
	h := harness.Start(t, harness.Options{Config: "limits:\n  requests_per_second: 20\n  burst: 50\n"})
	bad := harness.NewHostile(t)
	h.MustSpuff(t, "attach", "hostile", bad.URL())
	c := bad.Conn(10 * time.Second)
	if c == nil {
		t.Fatal("the broker never connected to the hostile shed")
	}
	const n = 20000
	start := time.Now()
	sent := harness.Flood(c, n)
	if sent != n {
		t.Fatalf("the broker took %d of %d requests before closing the connection", sent, n)
	}
	for end := time.Now().Add(60 * time.Second); len(bad.Answers()) < n && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	answers := bad.Answers()
	t.Logf("%d requests answered in %s", len(answers), time.Since(start).Round(time.Millisecond))
	if len(answers) != n {
		t.Fatalf("%d of %d requests answered", len(answers), n)
	}

	var lines []audit.Record
	requests, limitedLines := 0, 0
	for _, r := range h.Audit(t) {
		if r.Shed != "hostile" {
			continue
		}
		lines = append(lines, r)
		requests += r.Requests()
		if r.Code == bus.CodeRateLimited {
			limitedLines++
		}
	}
	missing, limited := auditCovers(lines, answers), 0
	for _, code := range answers {
		if code == bus.CodeRateLimited {
			limited++
		}
	}
	t.Logf("%d audit lines for %d requests (%d refused over the rate, in %d lines)", len(lines), requests, limited, limitedLines)
	if missing > 0 {
		t.Errorf("%d of %d answers have no audit line with their code", missing, n)
	}
	if requests != n {
		t.Errorf("the hostile shed's lines count %d requests, want %d", requests, n)
	}
	if limited < n/2 {
		t.Fatalf("only %d of %d requests were refused over the rate; the test proves little", limited, n)
	}
	if limitedLines*20 > limited {
		t.Errorf("%d lines for %d refusals over the rate, want at least 20 refusals a line", limitedLines, limited)
	}
}

// auditCovers counts the answers (id → code) that no line answers with
// their code: neither a line of their own nor a counted line listing them
// or whose range holds them.
func auditCovers(lines []audit.Record, answers map[string]string) (missing int) {
	byID := map[string]string{}
	var ranged []audit.Record
	for _, r := range lines {
		if r.ID != "" {
			byID[r.ID] = r.Code
		}
		for _, id := range r.IDs {
			byID[id] = r.Code
		}
		if r.IDRange[0] != "" {
			ranged = append(ranged, r)
		}
	}
	for id, code := range answers {
		if got, ok := byID[id]; ok && got == code {
			continue
		}
		if !slices.ContainsFunc(ranged, func(r audit.Record) bool { return r.Code == code && r.Answers(id) }) {
			missing++
		}
	}
	return missing
}
