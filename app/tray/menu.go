// Package tray is spuff-app's menu-bar face (fyne.io/systray): the sheds with
// connect/disconnect, the requests waiting for approval with approve/deny
// (in the menu and as desktop notifications with buttons), and the lock
// switch. It is a client of the control API like the CLI, fed by its one
// event stream, and rebuilds its one menu whole whenever what the menu
// offers changes.
package tray

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
)

// Client is what the tray needs of the control API.
type Client interface {
	Status(ctx context.Context) (*api.Status, error)
	Sheds(ctx context.Context) ([]api.Attachment, error)
	Pending(ctx context.Context) ([]api.PendingItem, error)
	Decide(ctx context.Context, id string, allow bool, via string) error
	Detach(ctx context.Context, name string) error
	Lock(ctx context.Context) (int, error)
	Events(ctx context.Context, fn func(api.Event) error) error
	// The sheds spuff makes (GET /v1/made, POST /v1/up…).
	Made(ctx context.Context) (*api.MadeList, error)
	Up(ctx context.Context, req api.UpRequest) (*api.MadeShed, error)
	Start(ctx context.Context, name string) (*api.MadeShed, error)
	Stop(ctx context.Context, name string) error
	Down(ctx context.Context, name string, force bool) error
}

// Item is one menu line. A nil Action makes it a disabled label; Sub holds
// a submenu.
type Item struct {
	Title     string
	Tooltip   string
	Action    func(ctx context.Context, c Client) error
	Sub       []Item
	Separator bool
	// Key tells apart items whose text is the same, such as two pending
	// requests with the same prompt.
	Key string
	// Checked makes the item a checkbox in that state; nil is no checkbox.
	Checked *bool
	// Detail follows Title on screen ("Title · Detail") but, like the
	// tooltip, is left out of the Signature and updated in place: an idle
	// countdown ticking must not rebuild (and close) an open menu.
	Detail string
}

// Text is what the item shows.
func (it Item) Text() string {
	if it.Detail == "" {
		return it.Title
	}
	return it.Title + " · " + it.Detail
}

// Autostart is the start-at-login switch the tray offers.
type Autostart interface {
	Enabled() bool
	Enable() error
	Disable() error
}

// AutostartItem is the "Start at login" checkbox for a.
func AutostartItem(a Autostart) Item {
	on := a.Enabled()
	return Item{
		Title:   "Start at login",
		Tooltip: "start spuff when you log in to this computer",
		Checked: &on,
		Action: func(context.Context, Client) error {
			if on {
				return a.Disable()
			}
			return a.Enable()
		},
	}
}

// View is what the menu shows: the control API's answers and what the
// event stream told of sheds being made.
type View struct {
	Sheds   []api.Attachment
	Pending []api.PendingItem
	Made    []api.MadeShed
	// Steps holds each busy made shed's latest provisioning step.
	Steps map[string]string
	Err   error
	// Audit is the audit log's health; while it fails every request is
	// denied, and the menu says so first.
	Audit *api.AuditHealth
	// Fence is the replay fence's health; while it fails requests dated
	// ahead of the host clock are refused.
	Fence *api.FenceHealth
	// Read is when Made was read and Now the time drawn at: an idle
	// countdown is recounted from them between answers.
	Read, Now time.Time
}

// Build lays out the menu for attachments and pending requests alone.
func Build(sheds []api.Attachment, pending []api.PendingItem, err error) []Item {
	return BuildView(View{Sheds: sheds, Pending: pending, Err: err})
}

// BuildView lays out the menu for v. It is pure so the menu can be tested
// without a desktop. Every title and tooltip is made printable: shed
// names, prompts, steps and errors carry what a shed or provider chose.
func BuildView(v View) []Item {
	return printable(build(v))
}

func printable(items []Item) []Item {
	for i := range items {
		items[i].Title = api.Printable(items[i].Title)
		items[i].Tooltip = api.Printable(items[i].Tooltip)
		items[i].Detail = api.Printable(items[i].Detail)
		items[i].Sub = printable(items[i].Sub)
	}
	return items
}

func build(v View) []Item {
	sheds, pending, err := v.Sheds, v.Pending, v.Err
	var items []Item
	if err != nil {
		items = append(items, Item{Title: "spuff is not answering", Tooltip: err.Error()}, Item{Separator: true})
	}
	if a := v.Audit; a.Failing() {
		items = append(items, Item{
			Title:   "⚠ Audit log failing: every request is denied",
			Tooltip: a.Error + " (since " + a.Since.Local().Format(time.TimeOnly) + "); free space or fix permissions where the log lives",
		}, Item{Separator: true})
	}
	if f := v.Fence; f.Failing() {
		items = append(items, Item{
			Title:   "⚠ Replay fence failing: requests dated ahead of the clock are refused",
			Tooltip: f.Error + " (since " + f.Since.Local().Format(time.TimeOnly) + "); free space or fix permissions where " + f.Path + " lives",
		}, Item{Separator: true})
	}
	if len(pending) > 0 {
		items = append(items, Item{Title: fmt.Sprintf("%d waiting for approval", len(pending))})
		for _, p := range pending {
			id := p.ID
			items = append(items, Item{
				Key:     p.ID,
				Title:   "⚠ " + p.Prompt,
				Tooltip: fmt.Sprintf("%s %s/%s, %d waiting", p.Shed, p.NS, p.Op, p.Waiting),
				Sub: []Item{
					{Title: "Approve", Action: func(ctx context.Context, c Client) error { return c.Decide(ctx, id, true, api.ViaTray) }},
					{Title: "Deny", Action: func(ctx context.Context, c Client) error { return c.Decide(ctx, id, false, api.ViaTray) }},
				},
			})
		}
		items = append(items, Item{Separator: true})
	}
	made := map[string]bool{}
	for _, m := range v.Made {
		made[m.Name] = true
	}
	items = append(items, madeItems(v.Made, v.Steps, sheds, v.Now.Sub(v.Read))...)
	var attached int
	for _, s := range sheds {
		if !made[s.Name] {
			attached++
		}
	}
	if attached == 0 && len(v.Made) == 0 {
		items = append(items, Item{Title: "No sheds attached", Tooltip: "spuff attach NAME URL"})
	}
	for _, s := range sheds {
		if made[s.Name] {
			continue // shown with its made shed
		}
		name := s.Name
		mark := "○"
		if s.State == api.StateConnected {
			mark = "●"
		}
		items = append(items, Item{
			Title:   fmt.Sprintf("%s %s — %s", mark, s.Name, s.State),
			Tooltip: fmt.Sprintf("%s · %d requests, %d denied", s.URL, s.Requests, s.Denied),
			Sub: []Item{
				{Title: "Disconnect", Action: func(ctx context.Context, c Client) error { return c.Detach(ctx, name) }},
			},
		})
	}
	items = append(items, newShedItem(), Item{Separator: true},
		Item{Title: "Lock: revoke approvals, deny pending", Action: func(ctx context.Context, c Client) error {
			_, err := c.Lock(ctx)
			return err
		}},
	)
	return items
}

// Signature identifies what a menu offers: its items, their titles and
// which of them act, but not their tooltips. The tray rebuilds only when it
// changes: a rebuild closes a menu the user has open and renumbers its
// items, so rebuilding on every poll would snatch it from under them.
func Signature(items []Item) string {
	var b strings.Builder
	var walk func(items []Item, depth int)
	walk = func(items []Item, depth int) {
		for _, it := range items {
			check := "-"
			if it.Checked != nil {
				check = fmt.Sprint(*it.Checked)
			}
			fmt.Fprintf(&b, "%d|%t|%t|%s|%q|%q\n", depth, it.Separator, it.Action != nil, check, it.Key, it.Title)
			walk(it.Sub, depth+1)
		}
	}
	walk(items, 0)
	return b.String()
}
