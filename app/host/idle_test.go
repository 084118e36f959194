package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/broker"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/daemon"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/state"
)

// localProvider is a provider of local machines that exist only in
// memory: the sheds' guests run in the test process.
type localProvider struct {
	provisioning.NoStartStop
	mu sync.Mutex
	ms map[string]provisioning.Machine
}

func (p *localProvider) Name() string { return "local-test" }
func (p *localProvider) Capabilities() provisioning.Capabilities {
	return provisioning.Capabilities{StartStop: true, Local: true}
}
func (p *localProvider) Create(_ context.Context, req provisioning.CreateRequest) (provisioning.Machine, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := provisioning.Machine{ID: "m-" + req.Name, Name: req.Name, State: provisioning.Running, SSHAddr: "127.0.0.1:1", Labels: req.Labels}
	p.ms[m.ID] = m
	return m, nil
}
func (p *localProvider) Get(_ context.Context, id string) (provisioning.Machine, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.ms[id]
	if !ok {
		return m, provisioning.ErrNotFound
	}
	return m, nil
}
func (p *localProvider) Delete(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.ms, id)
	return nil
}
func (p *localProvider) List(context.Context) ([]provisioning.Machine, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []provisioning.Machine
	for _, m := range p.ms {
		out = append(out, m)
	}
	return out, nil
}
func (p *localProvider) Stop(_ context.Context, id string) error {
	return p.set(id, provisioning.Stopped)
}

func (p *localProvider) Start(_ context.Context, id string) error {
	return p.set(id, provisioning.Running)
}

func (p *localProvider) set(id string, st provisioning.State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.ms[id]
	m.State = st
	p.ms[id] = m
	return nil
}

type noBoot struct{}

func (noBoot) Bootstrap(context.Context, state.Shed, func(string)) (string, error) {
	return "x86_64", nil
}

// guestShed is a made shed whose guest daemon runs in this process.
type guestShed struct {
	d     *daemon.Daemon
	url   string
	login atomic.Int64 // unix nanos of the newest login-session activity
}

func startGuest(t *testing.T) *guestShed {
	t.Helper()
	dir, err := os.MkdirTemp("", "idl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	g := &guestShed{url: "unix://" + filepath.Join(dir, "bus.sock")}
	g.d = daemon.New(daemon.Options{RunDir: dir, SocketGID: -1, Terminals: t.TempDir(), Logins: func() time.Time {
		if n := g.login.Load(); n != 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- g.d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	return g
}

// testMade is spuff-app's made sheds as Run builds them, on a provider of
// in-memory local machines, with a real broker, audit log and state.db.
func testMade(t *testing.T, cfg *config.Config) (*made, *broker.Broker, *audit.Writer) {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	aw, err := audit.Open(filepath.Join(dir, "audit.log"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aw.Close() })
	db, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b, err := broker.New(broker.Options{Config: cfg, Audit: aw, Log: log,
		Dial: func(ctx context.Context, url string) (io.ReadWriteCloser, error) { return bus.Dial(ctx, url, nil) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	lp := &localProvider{ms: map[string]provisioning.Machine{}}
	md := &made{db: db, cfg: cfg, sheds: &rememberingBroker{Broker: b, db: db, log: log}, log: log, subs: map[chan api.Event]struct{}{}}
	md.m, err = provisioning.NewManager(provisioning.ManagerOptions{
		DB: db,
		Provider: func(name string) (provisioning.Provider, error) {
			if name != lp.Name() {
				return nil, fmt.Errorf("no provider %q here", name)
			}
			return lp, nil
		},
		UserData:   func(context.Context, string, string) ([]byte, error) { return []byte("#cloud-config\n"), nil },
		Bootstrap:  noBoot{},
		Audit:      provisionAudit{aw},
		KnownHosts: filepath.Join(dir, "known_hosts"),
		Log:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return md, b, aw
}

// TestIdleShutdownThroughTheBus: spuff-app's idle shutdown, wired as Run
// wires it (the broker's bus, the audit log, /v1/events), over guests
// attached on unix sockets. With a 4s timeout and a 2s notice, an
// untouched shed is warned and then stopped; a shed with an active login
// session, and one whose credential requests keep arriving, are neither;
// a shed used after its notice has the notice lifted. Each action has its
// audit line; the credential requests have theirs.
func TestIdleShutdownThroughTheBus(t *testing.T) {
	t.Setenv(idleEveryEnv, "200ms")
	cfg := config.Default()
	cfg.Provision.IdleTimeout, cfg.Provision.IdleNotice = 4*time.Second, 2*time.Second
	md, b, aw := testMade(t, cfg)
	log := md.log
	db := md.db
	var err error
	events, unsub := md.Subscribe()
	defer unsub()

	guests := map[string]*guestShed{}
	for _, name := range []string{"idle", "typing", "asking", "woken"} {
		if _, err := md.m.Up(context.Background(), provisioning.UpRequest{Name: name, Provider: "local-test", User: "dev"}); err != nil {
			t.Fatal(err)
		}
		guests[name] = startGuest(t)
		if err := md.sheds.Attach(name, guests[name].url); err != nil {
			t.Fatal(err)
		}
	}
	waitAttached(t, b, len(guests))
	if md.idle, err = newIdler(md, b, provisionAudit{aw}, log); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	idled := make(chan struct{})
	go func() { md.idle.Run(ctx); close(idled) }()
	t.Cleanup(func() { cancel(); <-idled })

	// typing's user is at work; asking's tools keep asking for credentials.
	stop := make(chan struct{})
	var busy sync.WaitGroup
	busy.Go(func() {
		for {
			guests["typing"].login.Store(time.Now().UnixNano())
			guests["asking"].d.Call(context.Background(), bus.NSSSHAgent, bus.OpList, nil, nil)
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
	defer func() { close(stop); busy.Wait() }()

	var seen []string
	deadline := time.After(20 * time.Second)
	for stopped := false; !stopped; {
		select {
		case e := <-events:
			if e.Kind != api.EventIdle || e.Idle == nil {
				continue
			}
			seen = append(seen, e.Shed+":"+e.Idle.Change)
			switch {
			case e.Shed == "woken" && e.Idle.Change == api.IdleNotice:
				// Used after the notice: a credential request arrives.
				guests["woken"].d.Call(context.Background(), bus.NSSSHAgent, bus.OpList, nil, nil)
			case e.Shed == "idle" && e.Idle.Change == api.IdleNotice:
				if e.Idle.LeftSeconds != 2 || e.Idle.Action != "stop" {
					t.Errorf("the notice event %+v, want 2s left before a stop", e.Idle)
				}
			case e.Shed == "idle" && e.Idle.Change == api.IdleStop:
				stopped = true
			}
		case <-deadline:
			t.Fatalf("the untouched shed was not stopped; idle events %v", seen)
		}
	}
	got := " " + strings.Join(seen, " ")
	if n := strings.Index(got, " idle:notice"); n < 0 || n > strings.Index(got, " idle:stop") ||
		!strings.Contains(got, " woken:notice") || !strings.Contains(got, " woken:cancel") ||
		strings.Contains(got, " typing:") || strings.Contains(got, " asking:") {
		t.Errorf("idle events%s", got)
	}
	for name, want := range map[string]string{"idle": state.Stopped, "typing": state.Ready, "asking": state.Ready, "woken": state.Ready} {
		if s, err := db.GetShed(context.Background(), name); err != nil || s.State != want {
			t.Errorf("%s: %s %v, want %s", name, s.State, err, want)
		}
	}
	if _, attached := attachedNames(b)["idle"]; attached {
		t.Error("the stopped shed is still attached")
	}

	lines := map[string][]string{}
	f, err := os.Open(aw.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := audit.Read(f, audit.Filter{}, func(r audit.Record) error {
		lines[r.Shed] = append(lines[r.Shed], r.NS+"/"+r.Op+"/"+r.Result)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	idleOps := func(name string) string {
		var out []string
		for _, l := range lines[name] {
			if strings.HasPrefix(l, "provision/idle_") {
				out = append(out, strings.TrimPrefix(l, "provision/"))
			}
		}
		return strings.Join(out, " ")
	}
	if got := idleOps("idle"); got != "idle_notice/ok idle_stop/ok" {
		t.Errorf("idle's audit lines %q", got)
	}
	if got := idleOps("woken"); !strings.HasPrefix(got, "idle_notice/ok idle_cancel/ok") {
		t.Errorf("woken's audit lines %q", got)
	}
	for _, name := range []string{"typing", "asking"} {
		if got := idleOps(name); got != "" {
			t.Errorf("%s, in use, has idle lines %q", name, got)
		}
	}
	if got := fmt.Sprint(lines["asking"]); !strings.Contains(got, "ssh-agent/list/") {
		t.Errorf("asking's credential requests are not audited: %s", got)
	}

	// spuff list's idle time left: counting down for a shed in use, none
	// for the stopped one.
	l, err := md.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Sheds) != len(guests) {
		t.Errorf("listed %+v", l.Sheds)
	}
	for _, s := range l.Sheds {
		switch {
		case s.Name == "idle" && s.IdleLeftSeconds != nil:
			t.Errorf("the stopped shed has %d idle seconds left", *s.IdleLeftSeconds)
		case s.Name == "typing" && (s.IdleLeftSeconds == nil || *s.IdleLeftSeconds < 2 || *s.IdleLeftSeconds > 4 || s.IdleTimeoutSeconds == nil || *s.IdleTimeoutSeconds != 4):
			t.Errorf("typing's idle fields %v %v, want about 4s of 4s", s.IdleLeftSeconds, s.IdleTimeoutSeconds)
		}
	}
}

func attachedNames(b *broker.Broker) map[string]string {
	out := map[string]string{}
	for _, a := range b.Sheds() {
		out[a.Name] = a.State
	}
	return out
}

func waitAttached(t *testing.T, b *broker.Broker, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c := 0
		for _, st := range attachedNames(b) {
			if st == api.StateConnected {
				c++
			}
		}
		if c == n {
			return
		}
	}
	t.Fatal(errors.New("the guests did not attach"))
}

// TestUpIdleTimeoutOfAStoppedShed: spuff up --idle-timeout of a stopped
// shed starts it with that timeout as its own; without the flag its own
// stays.
func TestUpIdleTimeoutOfAStoppedShed(t *testing.T) {
	md, _, _ := testMade(t, config.Default())
	ctx := context.Background()
	if _, err := md.Up(ctx, api.UpRequest{Name: "demo", Provider: "local-test", NoConnect: true, IdleTimeoutSeconds: new(int64(600))}); err != nil {
		t.Fatal(err)
	}
	own := func() *time.Duration {
		s, err := md.db.GetShed(ctx, "demo")
		if err != nil {
			t.Fatal(err)
		}
		return s.IdleTimeout
	}
	if d := own(); d == nil || *d != 10*time.Minute {
		t.Fatalf("own idle timeout %v after up, want 10m", d)
	}
	for _, c := range []struct {
		flag *int64
		want time.Duration
	}{{new(int64(0)), 0}, {nil, 0}, {new(int64(90)), 90 * time.Second}} {
		if err := md.Stop(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
		if _, err := md.Up(ctx, api.UpRequest{Name: "demo", IdleTimeoutSeconds: c.flag}); err != nil {
			t.Fatal(err)
		}
		if d := own(); d == nil || *d != c.want {
			t.Errorf("own idle timeout %v after up of the stopped shed (flag %v), want %s", d, c.flag, c.want)
		}
	}
}
