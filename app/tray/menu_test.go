package tray

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
)

type rec struct {
	Client
	calls []string
}

func (r *rec) Decide(_ context.Context, id string, allow bool, via string) error {
	r.calls = append(r.calls, "decide "+id+" "+map[bool]string{true: "allow", false: "deny"}[allow]+" "+via)
	return nil
}
func (r *rec) Detach(_ context.Context, name string) error {
	r.calls = append(r.calls, "detach "+name)
	return nil
}
func (r *rec) Lock(context.Context) (int, error) { r.calls = append(r.calls, "lock"); return 0, nil }

func find(items []Item, prefix string) *Item {
	for i := range items {
		if strings.HasPrefix(items[i].Title, prefix) {
			return &items[i]
		}
		if it := find(items[i].Sub, prefix); it != nil {
			return it
		}
	}
	return nil
}

func TestMenuActionsGoThroughTheClient(t *testing.T) {
	items := Build(
		[]api.Attachment{{Name: "web", State: api.StateConnected}},
		[]api.PendingItem{{ID: "p1", Shed: "web", Prompt: "web wants to sign a git commit"}},
		nil,
	)
	r := &rec{}
	pend := find(items, "⚠ web wants to sign a git commit")
	if pend == nil || len(pend.Sub) != 2 {
		t.Fatalf("no pending entry with approve/deny: %+v", items)
	}
	for _, sub := range pend.Sub {
		_ = sub.Action(context.Background(), r)
	}
	_ = find(items, "● web")
	if d := find(items, "Disconnect"); d != nil {
		_ = d.Action(context.Background(), r)
	}
	_ = find(items, "Lock").Action(context.Background(), r)
	want := "decide p1 allow tray|decide p1 deny tray|detach web|lock"
	if got := strings.Join(r.calls, "|"); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
}

func TestMenuShowsTrouble(t *testing.T) {
	items := Build(nil, nil, errors.New("dial unix: no such file"))
	if !strings.Contains(items[0].Title, "not answering") || items[0].Action != nil {
		t.Fatalf("first item %+v", items[0])
	}
	if find(items, "No sheds attached") == nil {
		t.Fatal("no empty-state line")
	}
}

func TestSignatureIgnoresCountersButNotWhatTheMenuOffers(t *testing.T) {
	web := api.Attachment{Name: "web", State: api.StateConnected, URL: "unix:///run/web"}
	ask := api.PendingItem{ID: "p1", Shed: "web", Prompt: "web wants to log in", Waiting: 1}
	base := Signature(Build([]api.Attachment{web}, []api.PendingItem{ask}, nil))

	busier, more := web, ask
	busier.Requests, busier.Denied, more.Waiting = 40, 3, 5
	if got := Signature(Build([]api.Attachment{busier}, []api.PendingItem{more}, nil)); got != base {
		t.Fatalf("request counters changed the signature, so the menu would be rebuilt under the user:\n%s\n%s", base, got)
	}

	other := ask
	other.ID = "p2" // same prompt, another request: its Approve must answer p2
	down := web
	down.State = api.StateDisconnected
	for name, sig := range map[string]string{
		"another request, same prompt": Signature(Build([]api.Attachment{web}, []api.PendingItem{other}, nil)),
		"shed state":                   Signature(Build([]api.Attachment{down}, []api.PendingItem{ask}, nil)),
		"request answered":             Signature(Build([]api.Attachment{web}, nil, nil)),
		"broker not answering":         Signature(Build([]api.Attachment{web}, []api.PendingItem{ask}, errors.New("down"))),
	} {
		if sig == base {
			t.Errorf("%s: the signature did not change, so the menu would go stale", name)
		}
	}
}

type fakeAutostart struct{ on bool }

func (f *fakeAutostart) Enabled() bool  { return f.on }
func (f *fakeAutostart) Enable() error  { f.on = true; return nil }
func (f *fakeAutostart) Disable() error { f.on = false; return nil }

func TestAutostartItemToggles(t *testing.T) {
	a := &fakeAutostart{}
	off := AutostartItem(a)
	if off.Checked == nil || *off.Checked {
		t.Fatalf("item for an off switch: %+v", off)
	}
	_ = off.Action(context.Background(), nil)
	on := AutostartItem(a)
	if !a.on || !*on.Checked {
		t.Fatalf("clicking it did not turn start-at-login on: %+v", a)
	}
	if Signature([]Item{off}) == Signature([]Item{on}) {
		t.Fatal("the checkbox state is not in the signature, so the menu would not show the change")
	}
	_ = on.Action(context.Background(), nil)
	if a.on {
		t.Fatal("clicking it again did not turn start-at-login off")
	}
}

// A shed's name, a prompt built from what it asked and an error quoting it
// reach the tray made printable.
func TestMenuTextFromAShedIsPrintable(t *testing.T) {
	evil := "x\x1b]0;pwned\x07\u202e\n"
	items := Build(
		[]api.Attachment{{Name: "m" + evil, State: api.StateDisconnected, URL: "unix:///" + evil, LastError: evil}},
		[]api.PendingItem{{ID: "1", Shed: evil, NS: "docker-credentials", Op: "get" + evil, Prompt: "wants " + evil}},
		errors.New("broker said "+evil),
	)
	var walk func([]Item)
	walk = func(items []Item) {
		for _, it := range items {
			for _, s := range []string{it.Title, it.Tooltip} {
				if strings.ContainsAny(s, "\x1b\x07\u202e\n") {
					t.Errorf("menu text %q is not printable", s)
				}
			}
			walk(it.Sub)
		}
	}
	walk(items)
	if it := find(items, "⚠ wants x"); it == nil || !strings.Contains(it.Title, `\x1b`) {
		t.Fatalf("the prompt is not shown escaped: %+v", items)
	}
}

// TestMenuSaysTheAuditLogIsFailing: while the audit log cannot be written
// every request is denied, and the menu says so first, with the reason.
func TestMenuSaysTheAuditLogIsFailing(t *testing.T) {
	healthy := BuildView(View{Sheds: []api.Attachment{{Name: "a", State: api.StateConnected}}, Audit: &api.AuditHealth{Durability: "batch"}})
	if find(healthy, "⚠ Audit") != nil {
		t.Fatal("a healthy audit log is reported failing")
	}
	items := BuildView(View{Sheds: []api.Attachment{{Name: "a", State: api.StateConnected}},
		Audit: &api.AuditHealth{Durability: "batch", Error: "audit: writing /x/audit.log: no space left on device", Since: time.Now()}})
	if len(items) == 0 || !strings.HasPrefix(items[0].Title, "⚠ Audit log failing") || !strings.Contains(items[0].Tooltip, "no space left") {
		t.Fatalf("first item %+v, want the audit failure with its reason", items[0])
	}
}

// TestMenuSaysTheReplayFenceIsFailing: while the fence cannot be written,
// requests dated ahead of the host clock are refused, and the menu says
// so with the reason and where the file lives.
func TestMenuSaysTheReplayFenceIsFailing(t *testing.T) {
	sheds := []api.Attachment{{Name: "a", State: api.StateConnected}}
	if healthy := BuildView(View{Sheds: sheds, Fence: &api.FenceHealth{Path: "/h/.spuff/replay-fence"}}); find(healthy, "⚠ Replay") != nil {
		t.Fatal("a healthy replay fence is reported failing")
	}
	items := BuildView(View{Sheds: sheds,
		Fence: &api.FenceHealth{Path: "/h/.spuff/replay-fence", Error: "broker: writing the replay fence /h/.spuff/replay-fence: no space left on device", Since: time.Now()}})
	if len(items) == 0 || !strings.HasPrefix(items[0].Title, "⚠ Replay fence failing") || !strings.Contains(items[0].Tooltip, "no space left") || !strings.Contains(items[0].Tooltip, "/h/.spuff/replay-fence lives") {
		t.Fatalf("first item %+v, want the fence failure with its reason and path", items[0])
	}
}
