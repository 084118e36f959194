package tray

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spuff-dev/spuff/app/control/api"
)

// Lifecycle states of a made shed, as GET /v1/made reports them (DESIGN §8).
const (
	stateReady   = "ready"
	stateStopped = "stopped"
	stateFailed  = "failed"
	stateGone    = "gone"
)

// Bounds of provider- and guest-chosen text in the menu: a reason fills a
// tooltip, not the screen.
const (
	maxTitleReason = 60
	maxTooltip     = 300
)

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// madeItems lists the sheds spuff made: ● ready, ◐ on its way (with the
// step it is at), ○ stopped, ✕ failed (with why), each with what can be
// done to it in its state.
// age is how long ago made was read.
func madeItems(made []api.MadeShed, steps map[string]string, sheds []api.Attachment, age time.Duration) []Item {
	att := map[string]api.Attachment{}
	for _, a := range sheds {
		att[a.Name] = a
	}
	var items []Item
	for _, m := range made {
		name := m.Name
		// Printable first, so a cut never splits an escape and the bound
		// holds for what is shown.
		reason := api.Printable(m.Reason)
		it := Item{Key: "made:" + name}
		tip := []string{m.Provider}
		if m.Addr != "" {
			tip = append(tip, m.Addr)
		}
		if a, ok := att[name]; ok {
			tip = append(tip, "bus "+a.State, fmt.Sprintf("%d requests, %d denied", a.Requests, a.Denied))
		}
		destroy := Item{Title: "Destroy…", Tooltip: "delete the machine and its disk", Sub: []Item{
			{Title: "Yes, destroy " + name, Key: "destroy:" + name, Action: func(ctx context.Context, c Client) error { return c.Down(ctx, name, false) }},
		}}
		switch m.State {
		case stateReady:
			it.Title = "● " + name + " — ready"
			it.Detail = idleDetail(m, age)
			it.Sub = append(it.Sub, Item{Title: "Open terminal", Tooltip: "spuff ssh " + name,
				Action: func(ctx context.Context, _ Client) error { return openTerminal(ctx, name) }})
			if m.StartStop {
				it.Sub = append(it.Sub, Item{Title: "Stop", Tooltip: "power it off, keeping its disk",
					Action: func(ctx context.Context, c Client) error { return c.Stop(ctx, name) }})
			}
			it.Sub = append(it.Sub, destroy)
		case stateStopped:
			it.Title = "○ " + name + " — stopped"
			if m.StartStop {
				it.Sub = append(it.Sub, Item{Title: "Start", Tooltip: "boot it again",
					Action: func(ctx context.Context, c Client) error {
						_, err := c.Start(ctx, name)
						return err
					}})
			}
			it.Sub = append(it.Sub, destroy)
		case stateFailed:
			it.Title = "✕ " + name + " — failed"
			if reason != "" {
				it.Title += ": " + clip(reason, maxTitleReason)
				tip = append(tip, reason)
			}
			it.Sub = append(it.Sub, destroy)
		default: // creating, booting, bootstrapping, starting, stopping, destroying
			step := steps[name]
			if step == "" {
				step = m.State
			}
			it.Title = "◐ " + name + " — " + clip(api.Printable(step), maxTitleReason)
		}
		if m.Orphan != "" {
			tip = append(tip, "orphan: "+m.Orphan)
		}
		it.Tooltip = clip(strings.Join(tip, " · "), maxTooltip)
		items = append(items, it)
	}
	return items
}

// idleDetail is the idle countdown of a ready shed, age after it was read.
func idleDetail(m api.MadeShed, age time.Duration) string {
	left, ok := idleLeft(m)
	if !ok {
		return ""
	}
	left -= age
	if left < 0 {
		left = 0
	}
	return "idle ends it in " + roundLeft(left)
}

// idleLeft is how long until the host ends m for idling, as GET /v1/made
// said: only for a ready shed with a timeout that the host has asked.
func idleLeft(m api.MadeShed) (time.Duration, bool) {
	if m.IdleLeftSeconds == nil || (m.IdleTimeoutSeconds != nil && *m.IdleTimeoutSeconds == 0) {
		return 0, false
	}
	return time.Duration(*m.IdleLeftSeconds) * time.Second, true
}

// roundLeft shows a countdown to the minute (to the second in its last minute).
func roundLeft(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	d = d.Round(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	if h > 0 {
		return fmt.Sprintf("%dh%02dm", h, m)
	}
	return fmt.Sprintf("%dm", m)
}

// newShedItem makes a shed with the default provider and a name not taken.
func newShedItem() Item {
	return Item{Title: "New shed", Tooltip: "spuff up with the default provider and a fresh name",
		Action: func(ctx context.Context, c Client) error {
			l, err := c.Made(ctx)
			if err != nil {
				return err
			}
			_, err = c.Up(ctx, api.UpRequest{Name: freshName(l.Sheds)})
			return err
		}}
}

// freshName is shed-N for the smallest N no made shed has.
func freshName(made []api.MadeShed) string {
	taken := map[string]bool{}
	for _, m := range made {
		taken[m.Name] = true
	}
	for n := 1; ; n++ {
		if name := fmt.Sprintf("shed-%d", n); !taken[name] {
			return name
		}
	}
}

// stepLog keeps each made shed's latest step from the event stream, which
// GET /v1/made does not carry: the menu shows "◐ web — waiting for ssh".
type stepLog struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *stepLog) on(e api.Event) {
	if e.Kind != api.EventProvision || e.Provision == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.State {
	case stateReady, stateStopped, stateFailed, stateGone:
		delete(s.m, e.Shed) // at rest: its state says it all
	default:
		s.m[e.Shed] = e.Provision.Step
	}
}

func (s *stepLog) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}
