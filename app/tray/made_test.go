package tray

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/notify"
)

type madeRec struct {
	rec
	made []api.MadeShed
}

func (r *madeRec) Made(context.Context) (*api.MadeList, error) {
	return &api.MadeList{Sheds: r.made}, nil
}
func (r *madeRec) Up(_ context.Context, req api.UpRequest) (*api.MadeShed, error) {
	r.calls = append(r.calls, "up "+req.Name+" provider="+req.Provider)
	return &api.MadeShed{Name: req.Name}, nil
}
func (r *madeRec) Start(_ context.Context, name string) (*api.MadeShed, error) {
	r.calls = append(r.calls, "start "+name)
	return &api.MadeShed{Name: name}, nil
}
func (r *madeRec) Stop(_ context.Context, name string) error {
	r.calls = append(r.calls, "stop "+name)
	return nil
}
func (r *madeRec) Down(_ context.Context, name string, force bool) error {
	r.calls = append(r.calls, "down "+name)
	return nil
}

func titles(items []Item) []string {
	var out []string
	for _, it := range items {
		if !it.Separator {
			out = append(out, it.Title)
		}
	}
	return out
}

func subTitles(it *Item) string {
	if it == nil {
		return "<no item>"
	}
	return strings.Join(titles(it.Sub), "|")
}

// Each state has its mark and only the actions that apply to it; a cloud
// shed (no StartStop) is never offered Stop or Start.
func TestMadeShedsShowTheirStateAndWhatCanBeDone(t *testing.T) {
	made := []api.MadeShed{
		{Name: "web", Provider: "qemu", StartStop: true, State: "ready"},
		{Name: "api", Provider: "qemu", StartStop: true, State: "booting"},
		{Name: "db", Provider: "qemu", StartStop: true, State: "stopped"},
		{Name: "ci", Provider: "hetzner", State: "failed", Reason: "creating the machine: quota exceeded"},
		{Name: "do", Provider: "digitalocean", State: "ready"},
	}
	items := BuildView(View{Made: made, Steps: map[string]string{"api": "waiting for ssh on 127.0.0.1:2222"}})
	for prefix, want := range map[string]string{
		"● web — ready":                                  "Open terminal|Stop|Destroy…",
		"◐ api — waiting for ssh on 127.0.0.1:2222":      "",
		"○ db — stopped":                                 "Start|Destroy…",
		"✕ ci — failed: creating the machine: quota exc": "Destroy…",
		"● do — ready":                                   "Open terminal|Destroy…",
	} {
		if got := subTitles(find(items, prefix)); got != want {
			t.Errorf("%q offers %q, want %q\nmenu: %q", prefix, got, want, titles(items))
		}
	}
	if find(items, "No sheds attached") != nil {
		t.Error("the empty state shows beside made sheds")
	}
	if find(items, "New shed") == nil {
		t.Error("no New shed item")
	}
	// Destroy asks first: its one action is the confirmation below it.
	d := find(find(items, "● web").Sub, "Destroy…")
	if d == nil || d.Action != nil || len(d.Sub) != 1 || d.Sub[0].Title != "Yes, destroy web" {
		t.Fatalf("Destroy… is %+v, want a submenu confirming it", d)
	}
}

func TestMadeShedActionsGoThroughTheClient(t *testing.T) {
	r := &madeRec{made: []api.MadeShed{{Name: "shed-1", State: "ready", StartStop: true}, {Name: "db", State: "stopped", StartStop: true}}}
	items := BuildView(View{Made: r.made})
	ctx := context.Background()
	for _, path := range [][]string{{"● shed-1", "Stop"}, {"○ db", "Start"}, {"● shed-1", "Yes, destroy shed-1"}, {"New shed"}} {
		it := find(items, path[0])
		if len(path) > 1 {
			it = find([]Item{*it}, path[1])
		}
		if it == nil || it.Action == nil {
			t.Fatalf("no action at %v", path)
		}
		if err := it.Action(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// New shed takes the default provider and the first free name.
	want := "stop shed-1|start db|down shed-1|up shed-2 provider="
	if got := strings.Join(r.calls, "|"); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
}

// A provider's or guest's reason and step are escaped and bounded: one
// line in the title, the rest in the tooltip, never the whole screen.
func TestMadeShedTextIsPrintableAndBounded(t *testing.T) {
	evil := "boot\x1b]0;pwned\x07\u202e\n" + strings.Repeat("x", 5000)
	items := BuildView(View{Made: []api.MadeShed{
		{Name: "ci", State: "failed", Reason: evil},
		{Name: "api", State: "booting"},
	}, Steps: map[string]string{"api": evil}})
	for _, it := range items {
		for _, s := range []string{it.Title, it.Tooltip} {
			if strings.ContainsAny(s, "\x1b\x07\u202e\n") {
				t.Errorf("menu text %q is not printable", s)
			}
			if n := len([]rune(s)); n > maxTooltip+40 {
				t.Errorf("menu text of %d characters: %.80q…", n, s)
			}
		}
	}
	if it := find(items, "✕ ci — failed: boot\\x1b"); it == nil || !strings.HasSuffix(it.Title, "…") {
		t.Fatalf("the failed shed's reason is not shown escaped and cut: %q", titles(items))
	}
}

func TestStepLogKeepsTheStepWhileBusy(t *testing.T) {
	s := &stepLog{m: map[string]string{}}
	s.on(api.Event{Kind: api.EventProvision, Shed: "web", State: "booting", Provision: &api.ProvisionStep{Step: "booting"}})
	s.on(api.Event{Kind: api.EventProvision, Shed: "web", State: "bootstrapping", Provision: &api.ProvisionStep{Step: "installing spuff-guest"}})
	if got := s.snapshot()["web"]; got != "installing spuff-guest" {
		t.Fatalf("step %q", got)
	}
	items := BuildView(View{Made: []api.MadeShed{{Name: "web", State: "bootstrapping"}}, Steps: s.snapshot()})
	if find(items, "◐ web — installing spuff-guest") == nil {
		t.Fatalf("menu %q", titles(items))
	}
	s.on(api.Event{Kind: api.EventProvision, Shed: "web", State: "ready", Provision: &api.ProvisionStep{Step: "ready"}})
	if _, ok := s.snapshot()["web"]; ok {
		t.Fatal("a ready shed keeps its last step")
	}
}

// The detail (the idle countdown) is shown but does not rebuild the menu.
func TestDetailIsShownButNotInTheSignature(t *testing.T) {
	a := []Item{{Title: "● web — ready", Detail: "idle ends it in 12m"}}
	b := []Item{{Title: "● web — ready", Detail: "idle ends it in 11m"}}
	if Signature(a) != Signature(b) {
		t.Fatal("a ticking countdown changes the signature, so an open menu would close every minute")
	}
	if a[0].Text() != "● web — ready · idle ends it in 12m" {
		t.Fatalf("text %q", a[0].Text())
	}
	for d, want := range map[time.Duration]string{90 * time.Minute: "1h30m", 12*time.Minute + 20*time.Second: "12m", 42 * time.Second: "42s"} {
		if got := roundLeft(d); got != want {
			t.Errorf("roundLeft(%s) = %q, want %q", d, got, want)
		}
	}
}

// Ready and failed sheds are posted; the other steps are not.
func TestShedNotifications(t *testing.T) {
	c := &streamClient{events: make(chan api.Event, 8), decided: make(chan string, 1)}
	n := &notes{events: make(chan notify.Event, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Notices(ctx, c, n, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, e := range []api.Event{
		{Kind: api.EventProvision, Shed: "web", State: "booting", Provision: &api.ProvisionStep{Step: "booting"}},
		{Kind: api.EventProvision, Shed: "web", State: "ready", Provision: &api.ProvisionStep{Step: "ready"}},
		{Kind: api.EventProvision, Shed: "ci", State: "failed", Provision: &api.ProvisionStep{Step: "bootstrapping", Error: "no ssh\x1b[2J\nforged"}},
	} {
		c.events <- e
	}
	var shown []notify.Notification
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		n.mu.Lock()
		shown = append([]notify.Notification(nil), n.shown...)
		n.mu.Unlock()
		if len(shown) >= 2 {
			break
		}
	}
	if len(shown) != 2 || shown[0].Title != "web is ready" || !strings.Contains(shown[0].Body, "spuff ssh web") {
		t.Fatalf("notifications %+v", shown)
	}
	f := shown[1]
	if f.Title != "ci failed" || !strings.Contains(f.Body, `bootstrapping: no ssh\x1b[2J\nforged`) || strings.Contains(f.Body, "\x1b") || strings.Count(f.Body, "\n") != 1 {
		t.Fatalf("failed notification %+v: want the step and error escaped, spuff's one line break", f)
	}
}

// A ready shed the host counts down shows the time left, recounted from
// when it was read; a shed whose timeout is 0 shows none.
func TestIdleCountdown(t *testing.T) {
	left, never, timeout := int64(12*60+20), int64(0), int64(3600)
	read := time.Now()
	v := View{Made: []api.MadeShed{
		{Name: "web", State: "ready", IdleLeftSeconds: &left, IdleTimeoutSeconds: &timeout},
		{Name: "db", State: "ready", IdleLeftSeconds: &left, IdleTimeoutSeconds: &never},
	}, Read: read, Now: read}
	if it := find(BuildView(v), "● web"); it == nil || it.Text() != "● web — ready · idle ends it in 12m" {
		t.Fatalf("web: %+v", it)
	}
	if it := find(BuildView(v), "● db"); it == nil || it.Detail != "" {
		t.Fatalf("a shed that never idles out shows a countdown: %+v", it)
	}
	v.Now = read.Add(5 * time.Minute)
	if it := find(BuildView(v), "● web"); it.Detail != "idle ends it in 7m" {
		t.Fatalf("five minutes on: %q", it.Detail)
	}
	v.Now = read.Add(time.Hour)
	if it := find(BuildView(v), "● web"); it.Detail != "idle ends it in 0s" {
		t.Fatalf("past the end: %q", it.Detail)
	}
}

// The host's idle notice is posted, taken down when the shed is used, and
// the end itself is told (or its failure, escaped).
func TestIdleNotifications(t *testing.T) {
	c := &streamClient{events: make(chan api.Event, 8), decided: make(chan string, 1)}
	n := &notes{events: make(chan notify.Event, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Notices(ctx, c, n, slog.New(slog.NewTextHandler(io.Discard, nil)))
	idle := func(shed, change, action string, left int64, errText string) api.Event {
		return api.Event{Kind: api.EventIdle, Shed: shed, Idle: &api.IdleChange{Change: change, IdleSeconds: 6600, LeftSeconds: left, Action: action, Error: errText}}
	}
	c.events <- idle("web", api.IdleNotice, api.IdleStop, 600, "")
	n.until(t, "the idle notice", func(shown []notify.Notification, _ []uint32) bool { return len(shown) == 1 })
	c.events <- idle("web", api.IdleCancel, "", 0, "")
	n.until(t, "the notice taken down", func(_ []notify.Notification, closed []uint32) bool { return len(closed) == 1 && closed[0] == 1 })
	c.events <- idle("ci", api.IdleNotice, api.IdleDestroy, 60, "")
	c.events <- idle("ci", api.IdleDestroy, "", 0, "api down\x1b[2J")
	n.until(t, "the failed end", func(shown []notify.Notification, closed []uint32) bool { return len(shown) == 3 && len(closed) == 2 })
	shown, _ := n.state()
	if shown[0].Title != "web will be stopped in 10m" || !strings.Contains(shown[0].Body, "idle for 1h50m") {
		t.Errorf("notice %+v", shown[0])
	}
	if shown[1].Title != "ci will be destroyed in 1m" {
		t.Errorf("notice %+v", shown[1])
	}
	if shown[2].Title != "ci could not be destroyed" || shown[2].Body != `api down\x1b[2J` {
		t.Errorf("failed end %+v", shown[2])
	}
}
