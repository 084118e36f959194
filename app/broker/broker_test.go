package broker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/bus/bustest"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// memAudit keeps records in memory and can be made to fail, or to hold
// every write until gate is closed.
type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
	fail error
	gate chan struct{}
}

func (m *memAudit) Write(_ context.Context, r audit.Record) error {
	m.mu.Lock()
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		<-gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.recs = append(m.recs, r)
	return nil
}

func (m *memAudit) all() []audit.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Record(nil), m.recs...)
}

// rawGuest is a shed that speaks raw frames, so tests can send what a
// well-behaved bus.Conn never would.
type rawGuest struct {
	t    *testing.T
	path string
	l    net.Listener
	mu   sync.Mutex
	conn net.Conn
	got  chan *bus.Envelope
}

func newRawGuest(t *testing.T) *rawGuest {
	t.Helper()
	dir, err := os.MkdirTemp("", "spb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	g := &rawGuest{t: t, path: filepath.Join(dir, "bus.sock"), got: make(chan *bus.Envelope, 64)}
	g.listen()
	return g
}

func (g *rawGuest) listen() {
	l, err := net.Listen("unix", g.path)
	if err != nil {
		g.t.Fatal(err)
	}
	g.l = l
	g.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			g.conn = c
			g.mu.Unlock()
			go g.read(c)
		}
	}()
}

func (g *rawGuest) read(c net.Conn) {
	for {
		e, err := bus.ReadEnvelope(c)
		if err != nil {
			return
		}
		if e.Type == bus.TypeRequest && e.Op == bus.OpHello {
			p, _ := json.Marshal(bus.HelloResponse{Version: bus.Version, GuestVersion: "test", Namespaces: []string{bus.NSSSHAgent}})
			_ = bus.WriteEnvelope(c, &bus.Envelope{V: bus.Version, ID: e.ID, Type: bus.TypeResponse, Payload: p})
			continue
		}
		g.got <- e
	}
}

func (g *rawGuest) writeRaw(b []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.conn.Write(b); err != nil {
		g.t.Logf("raw write: %v", err)
	}
}

// ask sends a request envelope and waits for its response.
func (g *rawGuest) ask(e *bus.Envelope) *bus.Envelope {
	g.t.Helper()
	b, err := bus.EncodeEnvelope(e)
	if err != nil {
		g.t.Fatal(err)
	}
	g.writeRaw(b)
	return g.await(e.ID)
}

func (g *rawGuest) await(id string) *bus.Envelope {
	g.t.Helper()
	for {
		select {
		case r := <-g.got:
			if r.ID == id && r.Type == bus.TypeResponse {
				return r
			}
		case <-time.After(5 * time.Second):
			g.t.Fatalf("no response to %s", id)
			return nil
		}
	}
}

type fixture struct {
	b     *Broker
	audit *memAudit
	cfg   *config.Config
}

func newFixture(t *testing.T, mutate func(*config.Config)) *fixture {
	return newFixtureWith(t, mutate, nil)
}

// newFixtureWith is newFixture with the broker's options changed by tune.
func newFixtureWith(t *testing.T, mutate func(*config.Config), tune func(*Options)) *fixture {
	t.Helper()
	cfg := config.Default()
	if mutate != nil {
		mutate(cfg)
	}
	m := &memAudit{}
	opts := Options{
		Config: cfg, Audit: m,
		Dial: func(ctx context.Context, url string) (io.ReadWriteCloser, error) {
			return bus.Dial(ctx, url, nil)
		},
		Services:   map[string]helper.Service{bus.NSSSHAgent: echoService{}},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
	if tune != nil {
		tune(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &fixture{b: b, audit: m, cfg: cfg}
}

func (f *fixture) attach(t *testing.T, name string, g *rawGuest) {
	t.Helper()
	if err := f.b.Attach(name, "unix://"+g.path); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, name, api.StateConnected)
}

func (f *fixture) waitState(t *testing.T, name, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range f.b.Sheds() {
			if s.Name == name && s.State == state {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("shed %s never became %s: %+v", name, state, f.b.Sheds())
}

// echoService is a namespace that echoes, so the pipeline runs end to end.
type echoService struct{}

func (echoService) Describe(_ context.Context, r *helper.Request) (*helper.Action, error) {
	return &helper.Action{Detail: "echo for " + r.Shed}, nil
}

func (echoService) Serve(_ context.Context, r *helper.Request, _ *helper.Action) (any, error) {
	return map[string]string{"shed": r.Shed}, nil
}

func code(e *bus.Envelope) string {
	if e.Error == nil {
		return ""
	}
	return e.Error.Code
}

func TestIdentityComesFromTheConnection(t *testing.T) {
	f := newFixture(t, nil)
	g := newRawGuest(t)
	f.attach(t, "attacker", g)
	newRawGuest(t) // a victim shed exists elsewhere; nothing can name it
	id := bus.NewID()
	frame := []byte(`{"v":1,"id":"` + id + `","type":"request","ns":"ssh-agent","op":"list","shed":"victim","payload":{"shed":"victim","Shed":"victim"}}`)
	b, _ := bus.AppendFrame(nil, frame)
	g.writeRaw(b)
	resp := g.await(id)
	if resp.Error != nil {
		t.Fatalf("request failed: %v", resp.Error)
	}
	var out map[string]string
	_ = json.Unmarshal(resp.Payload, &out)
	if out["shed"] != "attacker" {
		t.Fatalf("service saw shed %q, want the connection's name", out["shed"])
	}
	recs := f.audit.all()
	if len(recs) != 1 || recs[0].Shed != "attacker" {
		t.Fatalf("audit = %+v, want one line for shed attacker", recs)
	}
}

func TestReplayGuard(t *testing.T) {
	f := newFixture(t, nil)
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	id := bus.NewID()
	if r := g.ask(bustest.Ping(id)); r.Error != nil {
		t.Fatalf("first use: %v", r.Error)
	}
	cases := map[string]struct {
		id   string
		want string
	}{
		"duplicate":   {id, bus.CodeReplayed},
		"stale":       {bustest.IDAt(time.Now().Add(-10 * time.Minute)), bus.CodeReplayed},
		"future":      {bustest.IDAt(time.Now().Add(10 * time.Minute)), bus.CodeReplayed},
		"uuid v4":     {uuid.NewString(), bus.CodeBadRequest},
		"not a uuid":  {"hello-there", bus.CodeBadRequest},
		"near-future": {bustest.IDAt(time.Now().Add(30 * time.Second)), ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := g.ask(bustest.Ping(c.id))
			if code(r) != c.want {
				t.Fatalf("got %q (%v), want %q", code(r), r.Error, c.want)
			}
		})
	}
	// Every denial has its audit line, with the denied result and its code.
	denied := 0
	for _, r := range f.audit.all() {
		if r.Result == "denied" {
			denied++
			if r.Code != bus.CodeReplayed && r.Code != bus.CodeBadRequest {
				t.Errorf("denied line with code %q", r.Code)
			}
		}
	}
	if denied != 5 {
		t.Fatalf("%d denied audit lines, want 5", denied)
	}
}

func TestReplayGuardMemoryBounded(t *testing.T) {
	now := time.Now()
	g := newReplayGuard(time.Minute, 100, now)
	check := func(shed, id string, at time.Time) error {
		u, _, err := g.parse(shed, id, at)
		if err != nil {
			return err
		}
		return g.remember(shed, u, at)
	}
	for i := 0; i < 100; i++ {
		if err := check("a", bus.NewID(), now); err != nil {
			t.Fatalf("id %d: %v", i, err)
		}
	}
	if err := check("a", bus.NewID(), now); bus.CodeOf(err) != bus.CodeRateLimited {
		t.Fatalf("past the cap: %v, want RATE_LIMITED", err)
	}
	// The cap is per shed.
	if err := check("b", bus.NewID(), now); err != nil {
		t.Fatalf("another shed past the first one's cap: %v", err)
	}
	// Two rotations later the old ids are gone and room is back.
	later := now.Add(5 * time.Minute)
	_ = check("a", bustest.IDAt(later), later)
	later = later.Add(3 * time.Minute)
	if err := check("a", bustest.IDAt(later), later); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if s := g.sheds["a"]; len(s.cur)+len(s.old) > 2 {
		t.Fatalf("%d ids kept after rotation", len(s.cur)+len(s.old))
	}
}

func TestNamespaceNotEnabled(t *testing.T) {
	f := newFixture(t, func(c *config.Config) {
		c.Sheds = map[string]config.ShedOverride{"narrow": {Namespaces: []string{"aws-credentials"}}}
	})
	g := newRawGuest(t)
	f.attach(t, "narrow", g)
	r := g.ask(&bus.Envelope{V: 1, ID: bus.NewID(), Type: bus.TypeRequest, NS: bus.NSSSHAgent, Op: bus.OpList})
	if code(r) != bus.CodeNotAllowed {
		t.Fatalf("got %v, want NOT_ALLOWED", r.Error)
	}
	r = g.ask(&bus.Envelope{V: 1, ID: bus.NewID(), Type: bus.TypeRequest, NS: "made-up", Op: "x"})
	if code(r) != bus.CodeBadRequest {
		t.Fatalf("unknown ns: got %v, want BAD_REQUEST", r.Error)
	}
	if recs := f.audit.all(); len(recs) != 2 || recs[0].Result != "denied" || recs[1].Result != "denied" {
		t.Fatalf("audit = %+v", recs)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.Limits = config.Limits{RequestsPerSecond: 1, Burst: 5} })
	g := newRawGuest(t)
	f.attach(t, "noisy", g)
	limited := 0
	for range 10 {
		if code(g.ask(bustest.Ping(bus.NewID()))) == bus.CodeRateLimited {
			limited++
		}
	}
	if limited < 4 {
		t.Fatalf("%d of 10 burst requests limited, want at least 4", limited)
	}
	n := 0
	for _, r := range f.audit.all() {
		if r.Code == bus.CodeRateLimited && r.Result == "denied" {
			n += r.Requests()
		}
	}
	if n != limited {
		t.Fatalf("RATE_LIMITED audit lines count %d requests for %d denials", n, limited)
	}
}

// burst writes n pings in one write and returns their ids; collect reads
// the answers to ids, by id.
func (g *rawGuest) burst(n int) []string {
	var buf []byte
	ids := make([]string, n)
	for i := range ids {
		ids[i] = bus.NewID()
		b, _ := bus.EncodeEnvelope(bustest.Ping(ids[i]))
		buf = append(buf, b...)
	}
	g.writeRaw(buf)
	return ids
}

func (g *rawGuest) collect(ids []string, d time.Duration) map[string]*bus.Envelope {
	g.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]*bus.Envelope{}
	end := time.After(d)
	for len(out) < len(ids) {
		select {
		case r := <-g.got:
			if r.Type == bus.TypeResponse && want[r.ID] {
				out[r.ID] = r
			}
		case <-end:
			g.t.Fatalf("%d of %d answers", len(out), len(ids))
		}
	}
	return out
}

// A flood far over the rate is answered in full, and its refusals share
// a few counted lines: each refusal is in a line with its code, and the
// lines count every request once.
func TestFloodRefusalsShareCountedLines(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.Limits = config.Limits{RequestsPerSecond: 1, Burst: 5} })
	g := newRawGuest(t)
	f.attach(t, "noisy", g)
	const n = 1000
	answers := g.collect(g.burst(n), 10*time.Second)
	recs := f.audit.all()
	requests, limitedLines, limited := 0, 0, 0
	for _, r := range recs {
		requests += r.Requests()
		if r.Code == bus.CodeRateLimited {
			limitedLines++
			if r.Count > 1 && (len(r.IDs) != min(r.Count, floodIDs) || !strings.Contains(r.Detail, "×")) {
				t.Errorf("counted line %+v", r)
			}
		}
	}
	for id, a := range answers {
		if code(a) == bus.CodeRateLimited {
			limited++
		}
		found := false
		for _, r := range recs {
			if r.Code == code(a) && r.Answers(id) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("the answer %s (%s) has no line", id, code(a))
		}
	}
	if requests != n {
		t.Errorf("the lines count %d requests, want %d", requests, n)
	}
	if limited < n-10 || limitedLines*20 > limited {
		t.Errorf("%d lines for %d refusals over the rate, want at least 20 a line", limitedLines, limited)
	}
	t.Logf("%d lines for %d requests, %d of them refused over the rate in %d lines", len(recs), n, limited, limitedLines)
}

// A held refusal is answered only after the line counting it is written,
// and a line that cannot be written denies every request it counts.
func TestCountedRefusalsWaitForTheirLine(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.Limits = config.Limits{RequestsPerSecond: 1, Burst: 1} })
	g := newRawGuest(t)
	f.attach(t, "noisy", g)
	gate := make(chan struct{})
	f.audit.mu.Lock()
	f.audit.gate = gate
	f.audit.mu.Unlock()
	ids := g.burst(50)
	select {
	case r := <-g.got:
		t.Fatalf("an answer left before its line was written: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	close(gate)
	g.collect(ids, 5*time.Second)
	n := 0
	for _, r := range f.audit.all() {
		n += r.Requests()
	}
	if n != 50 {
		t.Fatalf("lines count %d requests, want 50", n)
	}

	f.audit.mu.Lock()
	f.audit.gate, f.audit.fail = nil, errors.New("disk full")
	f.audit.mu.Unlock()
	for id, a := range g.collect(g.burst(50), 5*time.Second) {
		if code(a) != bus.CodeDenied {
			t.Fatalf("%s with the audit log failing: %q (%v), want DENIED", id, code(a), a.Error)
		}
	}
}

func TestAuditFailureDenies(t *testing.T) {
	f := newFixture(t, nil)
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	f.audit.mu.Lock()
	f.audit.fail = errors.New("disk full")
	f.audit.mu.Unlock()
	r := g.ask(&bus.Envelope{V: 1, ID: bus.NewID(), Type: bus.TypeRequest, NS: bus.NSSSHAgent, Op: bus.OpList})
	if code(r) != bus.CodeDenied || len(r.Payload) != 0 {
		t.Fatalf("with the audit log failing: %+v, want DENIED and no payload", r)
	}
}

// TestReplyWaitsForTheAuditLine: nothing reaches the guest, not even the
// answer to a ping, until the audit line is written.
func TestReplyWaitsForTheAuditLine(t *testing.T) {
	f := newFixture(t, nil)
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	gate := make(chan struct{})
	f.audit.mu.Lock()
	f.audit.gate = gate
	f.audit.mu.Unlock()
	for _, req := range []*bus.Envelope{
		bustest.Ping(bus.NewID()),
		{V: 1, ID: bus.NewID(), Type: bus.TypeRequest, NS: bus.NSSSHAgent, Op: bus.OpList},
		{V: 1, ID: "not-a-uuid", Type: bus.TypeRequest, NS: bus.NSSSHAgent, Op: bus.OpList}, // a denial waits too
	} {
		b, err := bus.EncodeEnvelope(req)
		if err != nil {
			t.Fatal(err)
		}
		g.writeRaw(b)
	}
	deadline := time.After(1500 * time.Millisecond)
wait:
	for {
		select {
		case r := <-g.got:
			if r.Type == bus.TypeResponse {
				t.Fatalf("a reply left before its audit line was written: %+v", r)
			}
		case <-deadline:
			break wait
		}
	}
	if n := len(f.audit.all()); n != 0 {
		t.Fatalf("%d audit lines recorded while the writer was held", n)
	}
	close(gate)
	for replies := 0; replies < 3; {
		select {
		case r := <-g.got:
			if r.Type == bus.TypeResponse {
				replies++
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 3 replies after the audit lines were written", replies)
		}
	}
	if n := len(f.audit.all()); n != 3 {
		t.Fatalf("%d audit lines for 3 replies", n)
	}
}

func TestBadFrameClosesOnlyThatShed(t *testing.T) {
	f := newFixture(t, nil)
	bad, good := newRawGuest(t), newRawGuest(t)
	f.attach(t, "bad", bad)
	f.attach(t, "good", good)
	bad.writeRaw(binary.BigEndian.AppendUint32(nil, bus.MaxFrame+1))
	f.waitState(t, "bad", api.StateDisconnected)
	if r := good.ask(bustest.Ping(bus.NewID())); r.Error != nil {
		t.Fatalf("the other shed was disturbed: %v", r.Error)
	}
	// The bad shed is redialled and works again.
	f.waitState(t, "bad", api.StateConnected)
	if r := bad.ask(bustest.Ping(bus.NewID())); r.Error != nil {
		t.Fatalf("after reconnect: %v", r.Error)
	}
}

func TestDetachStopsService(t *testing.T) {
	f := newFixture(t, nil)
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	if err := f.b.Detach("s1"); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Detach("s1"); err == nil {
		t.Fatal("detaching twice succeeded")
	}
	if len(f.b.Sheds()) != 0 {
		t.Fatalf("sheds after detach: %+v", f.b.Sheds())
	}
	if err := f.b.Attach("Bad Name", "unix:///x"); err == nil {
		t.Fatal("attached a shed with an invalid name")
	}
}

// One shed flooding fresh ids past its rate must not fill a replay memory
// that another shed needs: the flood is refused by the rate limit before
// its ids are remembered, and each shed's memory is its own.
func TestOneShedCannotLockOthersOut(t *testing.T) {
	f := newFixtureWith(t, nil, func(o *Options) { o.MaxReplayIDs = 100 })
	flood, calm := newRawGuest(t), newRawGuest(t)
	f.attach(t, "flood", flood)
	f.attach(t, "calm", calm)
	limited := 0
	for range 300 {
		if code(flood.ask(bustest.Ping(bus.NewID()))) == bus.CodeRateLimited {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("300 pings at once were never rate limited")
	}
	if r := calm.ask(bustest.Ping(bus.NewID())); r.Error != nil {
		t.Fatalf("the calm shed was refused after another shed's flood: %v", r.Error)
	}
}

// The same UUID in another letter case is the same id.
func TestReplayByLetterCase(t *testing.T) {
	f := newFixture(t, nil)
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	id := bus.NewID()
	if r := g.ask(bustest.Ping(id)); r.Error != nil {
		t.Fatalf("first use: %v", r.Error)
	}
	for _, again := range []string{strings.ToUpper(id), strings.ToUpper(id[:8]) + id[8:]} {
		if r := g.ask(bustest.Ping(again)); code(r) != bus.CodeReplayed {
			t.Fatalf("id %s again as %s: %q (%v), want REPLAYED", id, again, code(r), r.Error)
		}
	}
}

// An id made before the broker started cannot have been remembered by
// this broker, so it is refused: an id answered by the broker before a
// restart is not answered again.
func TestReplayFencedByStart(t *testing.T) {
	f := newFixture(t, nil)
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	if r := g.ask(bustest.Ping(bustest.IDAt(time.Now().Add(-2 * time.Second)))); code(r) != bus.CodeReplayed {
		t.Fatalf("an id from before the broker started: %q (%v), want REPLAYED", code(r), r.Error)
	}
	if r := g.ask(bustest.Ping(bus.NewID())); r.Error != nil {
		t.Fatalf("a fresh id: %v", r.Error)
	}
}

// A shed-chosen ns or op of any size is refused as a bad request, with an
// audit line whose fields are bounded, and no answer echoes it whole.
func TestOversizedNamesAreRefusedAndAudited(t *testing.T) {
	dir := t.TempDir()
	aw, err := audit.Open(filepath.Join(dir, "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aw.Close() })
	f := newFixtureWith(t, nil, func(o *Options) { o.Audit = aw })
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	huge := strings.Repeat("x", audit.MaxLine+10)
	cases := map[string]*bus.Envelope{
		"ns":       {NS: huge, Op: "sign"},
		"op":       {NS: bus.NSSSHAgent, Op: huge},
		"agent op": {NS: bus.NSAgent, Op: huge},
		"escapes":  {NS: "ssh-agent\x1b]0;owned\x07", Op: "sign"},
	}
	ids := map[string]bool{}
	for name, e := range cases {
		e.V, e.ID, e.Type = bus.Version, bus.NewID(), bus.TypeRequest
		ids[e.ID] = true
		r := g.ask(e)
		if code(r) != bus.CodeBadRequest {
			t.Fatalf("%s: %q (%v), want BAD_REQUEST", name, code(r), r.Error)
		}
		if len(r.Error.Message) > 200 {
			t.Fatalf("%s: the refusal repeats %d bytes", name, len(r.Error.Message))
		}
	}
	raw, err := os.ReadFile(aw.Path())
	if err != nil {
		t.Fatal(err)
	}
	var lines int
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var rec audit.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if ids[rec.ID] {
			lines++
			if rec.Result != "denied" || rec.Code != bus.CodeBadRequest || len(rec.NS) > 80 || len(rec.Op) > 80 || strings.ContainsRune(rec.NS, 0x1b) {
				t.Fatalf("audit line %+v", rec)
			}
		}
	}
	if lines != len(cases) {
		t.Fatalf("%d audit lines for %d refusals", lines, len(cases))
	}
}

// A request the bus refuses itself (too many in flight) has its audit line.
func TestInFlightRefusalIsAudited(t *testing.T) {
	release := make(chan struct{})
	f := newFixtureWith(t, nil, func(o *Options) {
		o.Bus.MaxInFlight = 1
		o.Services = map[string]helper.Service{bus.NSSSHAgent: blockingService{release}}
	})
	g := newRawGuest(t)
	f.attach(t, "s1", g)
	slow := &bus.Envelope{V: bus.Version, ID: bus.NewID(), Type: bus.TypeRequest, NS: bus.NSSSHAgent, Op: "list"}
	b, _ := bus.EncodeEnvelope(slow)
	g.writeRaw(b)
	time.Sleep(100 * time.Millisecond)
	refused := bustest.Ping(bus.NewID())
	if r := g.ask(refused); code(r) != bus.CodeRateLimited {
		t.Fatalf("a second request with one allowed in flight: %q (%v)", code(r), r.Error)
	}
	close(release)
	g.await(slow.ID)
	found := false
	for _, rec := range f.audit.all() {
		if rec.ID == refused.ID {
			found = rec.Result == "denied" && rec.Code == bus.CodeRateLimited && rec.Shed == "s1"
		}
	}
	if !found {
		t.Fatalf("no audit line for the refused request: %+v", f.audit.all())
	}
}

type blockingService struct{ release chan struct{} }

func (blockingService) Describe(context.Context, *helper.Request) (*helper.Action, error) {
	return &helper.Action{Detail: "blocking"}, nil
}

func (s blockingService) Serve(ctx context.Context, _ *helper.Request, _ *helper.Action) (any, error) {
	<-s.release
	return nil, nil
}

// A dial that never completes (an sshd that accepts and then says nothing,
// a handshake stalled under load) must not leave a shed "connecting"
// forever: each attempt is bounded, and the next one gets through.
func TestStalledDialIsRetried(t *testing.T) {
	var calls atomic.Int32
	f := newFixtureWith(t, nil, func(o *Options) {
		o.DialTimeout = 200 * time.Millisecond
		o.Dial = func(ctx context.Context, url string) (io.ReadWriteCloser, error) {
			if calls.Add(1) == 1 {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return bus.Dial(ctx, url, nil)
		}
	})
	g := newRawGuest(t)
	f.attach(t, "slow", g)
	if calls.Load() < 2 {
		t.Fatalf("connected after %d dials; the stalled one should have been abandoned", calls.Load())
	}
}

// An id dated ahead of the host clock and answered just before a restart is
// dated after the restarted broker started; the mark the first broker left
// for its shed refuses it all the same. Other sheds are not fenced by it,
// and the mark is written about once a second, not once a request.
func TestFutureIDFencedAcrossRestart(t *testing.T) {
	fence := filepath.Join(t.TempDir(), "replay-fence")
	tune := func(o *Options) { o.FencePath = fence }
	fast := func(c *config.Config) { c.Limits = config.Limits{RequestsPerSecond: 1000, Burst: 1000} }
	f := newFixtureWith(t, fast, tune)
	g, other := newRawGuest(t), newRawGuest(t)
	f.attach(t, "s1", g)
	f.attach(t, "s2", other)
	ahead := bustest.Ping(bustest.IDAt(time.Now().Add(60 * time.Second)))
	if r := g.ask(ahead); r.Error != nil {
		t.Fatalf("an id 60s ahead: %v", r.Error)
	}
	for i := range 100 {
		if r := g.ask(bustest.Ping(bustest.IDAt(time.Now().Add(30*time.Second + time.Duration(i)*time.Millisecond)))); r.Error != nil {
			t.Fatalf("an id 30s ahead: %v", r.Error)
		}
	}
	if b, _ := os.ReadFile(fence); strings.Count(string(b), "\n") > 3 {
		t.Errorf("101 future-dated ids wrote %d fence lines:\n%s", strings.Count(string(b), "\n"), b)
	}
	f.b.Close()

	f2 := newFixtureWith(t, fast, tune)
	f2.attach(t, "s1", g)
	f2.attach(t, "s2", other)
	if r := g.ask(ahead); code(r) != bus.CodeReplayed {
		t.Fatalf("the same id after a restart: %q (%v), want REPLAYED", code(r), r.Error)
	}
	if r := g.ask(bustest.Ping(bustest.IDAt(time.Now().Add(62 * time.Second)))); r.Error != nil {
		t.Fatalf("an id dated past the fence: %v", r.Error)
	}
	if r := other.ask(bustest.Ping(bus.NewID())); r.Error != nil {
		t.Fatalf("another shed's fresh id after the restart: %v", r.Error)
	}
	f2.b.Close()

	// A third start still fences s1 at the later mark, which the second
	// kept when it rewrote the file.
	f3 := newFixtureWith(t, fast, tune)
	f3.attach(t, "s1", g)
	if r := g.ask(bustest.Ping(bustest.IDAt(time.Now().Add(61500 * time.Millisecond)))); code(r) != bus.CodeReplayed {
		t.Fatalf("an id before the second run's mark, after another restart: %q (%v), want REPLAYED", code(r), r.Error)
	}
}
