package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control/api"
)

type fakeBroker struct{ sheds map[string]string }

func (f *fakeBroker) Attach(name, url string) error {
	if _, ok := f.sheds[name]; ok {
		return errors.New("broker: already attached")
	}
	f.sheds[name] = url
	return nil
}
func (f *fakeBroker) Detach(name string) error {
	if _, ok := f.sheds[name]; !ok {
		return errors.New("broker: no shed named " + name)
	}
	delete(f.sheds, name)
	return nil
}
func (f *fakeBroker) Sheds() []api.Attachment {
	var out []api.Attachment
	for n, u := range f.sheds {
		out = append(out, api.Attachment{Name: n, URL: u, State: api.StateConnected})
	}
	return out
}

// source is an event source that sends what the test gives it.
type source struct {
	subscribed chan chan api.Event
	ended      chan struct{}
}

func newSource() *source {
	return &source{subscribed: make(chan chan api.Event, 1), ended: make(chan struct{}, 1)}
}

func (s *source) Subscribe() (<-chan api.Event, func()) {
	ch := make(chan api.Event, 4)
	s.subscribed <- ch
	return ch, func() { s.ended <- struct{}{} }
}

type fakeApprovals struct{ decided []string }

func (f *fakeApprovals) Pending() []api.PendingItem {
	return []api.PendingItem{{ID: "q1", Shed: "web", Prompt: "web wants to sign a git commit"}}
}
func (f *fakeApprovals) Decide(id string, allow bool, via string) error {
	if id != "q1" {
		return api.ErrUnknown
	}
	f.decided = append(f.decided, id+" "+via)
	return nil
}
func (f *fakeApprovals) Grants() []api.Grant    { return nil }
func (f *fakeApprovals) Revoke(id string) error { return api.ErrUnknown }
func (f *fakeApprovals) Lock() int              { return 3 }

func serve(t *testing.T) (*Client, *fakeBroker, *fakeApprovals, string) {
	t.Helper()
	dir := sockDir(t)
	sock := filepath.Join(dir, "run", "spuff.sock")
	l, err := Listen(sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.log")
	w, err := audit.Open(auditPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, shed := range []string{"web", "db", "web"} {
		_ = w.Write(context.Background(), audit.Record{Shed: shed, NS: "ssh-agent", Op: "sign", Result: "ok"})
	}
	w.Close()
	fb, fa := &fakeBroker{sheds: map[string]string{}}, &fakeApprovals{}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Broker: fb, AuditPath: auditPath, Approvals: fa, Provisioner: &fakeProvisioner{}, Status: func() api.Status { return api.Status{Version: "test"} }}
	done := make(chan struct{})
	go func() { srv.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return NewClient(sock), fb, fa, sock
}

func TestRoutes(t *testing.T) {
	c, fb, fa, sock := serve(t)
	ctx := context.Background()
	for path, want := range map[string]os.FileMode{sock: 0o600, filepath.Dir(sock): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want mode %04o", path, fi, err, want)
		}
	}
	if err := c.Attach(ctx, "web", "unix:///x/bus.sock"); err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(ctx, "web", "unix:///x/bus.sock"); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Fatalf("second attach: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Version != "test" || len(st.Sheds) != 1 || st.PID != os.Getpid() {
		t.Fatalf("status %+v %v", st, err)
	}
	if err := c.Detach(ctx, "web"); err != nil || len(fb.sheds) != 0 {
		t.Fatalf("detach: %v, sheds %v", err, fb.sheds)
	}
	if err := c.Detach(ctx, "web"); err == nil {
		t.Fatal("detaching an unknown shed succeeded")
	}
	var got []string
	if err := c.Audit(ctx, audit.Filter{Shed: "web"}, false, func(r audit.Record) error { got = append(got, r.Shed); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("audit for web: %v", got)
	}
	if err := c.Decide(ctx, "q1", true, "cli"); err != nil || fa.decided[0] != "q1 cli" {
		t.Fatalf("approve: %v %v", err, fa.decided)
	}
	if err := c.Decide(ctx, "nope", false, "cli"); err == nil {
		t.Fatal("deciding an unknown question succeeded")
	}
	if n, err := c.Lock(ctx); err != nil || n != 3 {
		t.Fatalf("lock: %d %v", n, err)
	}
}

func TestNotRunning(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("got %v, want ErrNotRunning", err)
	}
}

// TestEventsMergeSources: /v1/events carries every source's events on one
// stream, and a client that goes away ends every subscription.
func TestEventsMergeSources(t *testing.T) {
	sock := filepath.Join(sockDir(t), "spuff.sock")
	l, err := Listen(sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	sheds, approvals := newSource(), newSource()
	srv := &Server{Broker: &fakeBroker{sheds: map[string]string{}}, Events: []Subscriber{sheds, approvals}}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { srv.Serve(sctx, l); close(served) }()
	t.Cleanup(func() { stop(); <-served })

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan api.Event, 4)
	streamed := make(chan error, 1)
	go func() {
		streamed <- NewClient(sock).Events(ctx, func(e api.Event) error { got <- e; return nil })
	}()
	recv := func(s *source) chan api.Event {
		select {
		case ch := <-s.subscribed:
			return ch
		case <-time.After(5 * time.Second):
			t.Fatal("the event stream did not subscribe to every source")
			return nil
		}
	}
	shedCh, apprCh := recv(sheds), recv(approvals)
	select {
	case e := <-got:
		if e.Kind != api.EventOpen {
			t.Fatalf("first event %+v, want %q", e, api.EventOpen)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not say it is open")
	}
	shedCh <- api.Event{Kind: api.EventShed, Shed: "web", State: api.StateConnected}
	apprCh <- api.Event{Kind: api.EventApproval, Shed: "web", Approval: &api.ApprovalChange{Change: api.ApprovalNew, ID: "q1", Pending: &api.PendingItem{ID: "q1", Prompt: "web wants"}}}
	seen := map[string]api.Event{}
	for range 2 {
		select {
		case e := <-got:
			seen[e.Kind] = e
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %+v", seen)
		}
	}
	if e := seen[api.EventShed]; e.Shed != "web" || e.State != api.StateConnected {
		t.Fatalf("shed event %+v", e)
	}
	if e := seen[api.EventApproval]; e.Approval == nil || e.Approval.Change != api.ApprovalNew || e.Approval.Pending == nil || e.Approval.Pending.Prompt != "web wants" {
		t.Fatalf("approval event %+v", e)
	}
	cancel()
	if err := <-streamed; err != nil {
		t.Fatalf("Events after cancel: %v", err)
	}
	for _, s := range []*source{sheds, approvals} {
		select {
		case <-s.ended:
		case <-time.After(5 * time.Second):
			t.Fatal("a subscription outlived its client")
		}
	}
}
