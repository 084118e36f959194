//go:build linux || (darwin && cgo) || windows

package tray

import (
	"context"
	"log/slog"
	"time"

	"fyne.io/systray"
	"github.com/spuff-dev/spuff/app/control/api"
)

// Run shows the tray until ctx ends or the user picks Quit. It must be
// called from the main goroutine (macOS requires it). A nil auto leaves out
// the start-at-login switch.
func Run(ctx context.Context, c Client, auto Autostart, log *slog.Logger) error {
	if err := available(); err != nil {
		return err
	}
	steps := &stepLog{m: map[string]string{}}
	var asked wants
	var needs eventNeeds
	changed := make(chan struct{}, 1)
	ask := func(n need) {
		asked.add(n)
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	// A click may change anything.
	poke := func() { ask(needAll) }
	onReady := func() {
		// Panels that show no title (most Linux ones) would draw a blank square.
		systray.SetTemplateIcon(icon(true), icon(false))
		systray.SetTitle("spuff")
		systray.SetTooltip("spuff: credentials for your sheds")
		go func() {
			// Every change arrives as an event, the stream's opening one
			// included (so a reconnect redraws what it missed); nothing polls.
			for ctx.Err() == nil {
				err := c.Events(ctx, func(e api.Event) error { steps.on(e); ask(needs.of(e)); return nil })
				if ctx.Err() == nil {
					log.Debug("tray: event stream ended; reopening", "err", err)
					poke() // draw "not answering" while it is down
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}
		}()
		go func() {
			var m shown
			// The idle countdown is recounted from the last answer every
			// so often, in place and without asking the API again.
			tick := time.NewTicker(countdownTick)
			defer tick.Stop()
			// later fires when counters held back by counterEvery are due.
			later := time.NewTimer(0)
			<-later.C
			var last time.Time
			redraw := func() {
				n := asked.take()
				if n == 0 {
					return
				}
				if d := wait(n, last, time.Now()); d > 0 {
					asked.add(n)
					later.Reset(d)
					return
				}
				last = time.Now()
				m.render(ctx, c, auto, n, steps.snapshot(), log, poke)
			}
			for {
				select {
				case <-ctx.Done():
					systray.Quit()
					return
				case <-changed:
					redraw()
				case <-later.C:
					redraw()
				case <-tick.C:
					if m.countdown {
						m.show(ctx, c, auto, m.view, log, poke)
					}
				}
			}
		}()
	}
	systray.Run(onReady, func() {})
	return nil
}

// shown is the menu on screen: its Signature, and its items in walk order
// (separators left out) with the tooltips they show.
type shown struct {
	sig      string
	items    []*systray.MenuItem
	tooltips []string
	texts    []string
	// view is the last answer; countdown says whether it has an idle
	// countdown to recount.
	view      View
	countdown bool
	answers   answers
}

// countdownTick is how often a shown idle countdown is recounted.
const countdownTick = 15 * time.Second

// render brings the menu up to date, asking the API again what n names.
// A change in what the menu offers rebuilds it; a change in tooltips alone
// (request counters) is applied in place, so that an open menu is not
// closed under the user every poll.
func (m *shown) render(ctx context.Context, c Client, auto Autostart, n need, steps map[string]string, log *slog.Logger, poke func()) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m.show(ctx, c, auto, m.answers.refresh(qctx, c, n, steps), log, poke)
}

// show draws v.
func (m *shown) show(ctx context.Context, c Client, auto Autostart, v View, log *slog.Logger, poke func()) {
	m.view, m.countdown = v, false
	for _, s := range v.Made {
		_, ok := idleLeft(s)
		m.countdown = m.countdown || ok
	}
	v.Now = time.Now()
	pending := v.Pending
	items := BuildView(v)
	if auto != nil {
		items = append(items, AutostartItem(auto))
	}
	sig := Signature(items)
	if sig == m.sig {
		texts := texts(items, nil)
		for i, tip := range tooltips(items, nil) {
			if tip != m.tooltips[i] {
				m.items[i].SetTooltip(tip)
				m.tooltips[i] = tip
			}
			if texts[i] != m.texts[i] {
				m.items[i].SetTitle(texts[i])
				m.texts[i] = texts[i]
			}
		}
		return
	}
	m.sig = sig
	systray.ResetMenu()
	if len(pending) > 0 || v.Audit.Failing() || v.Fence.Failing() {
		systray.SetTitle("spuff ⚠")
	} else {
		systray.SetTitle("spuff")
	}
	m.items = m.items[:0]
	for _, it := range items {
		m.items = add(ctx, c, log, nil, it, poke, m.items)
	}
	m.tooltips, m.texts = tooltips(items, nil), texts(items, nil)
	systray.AddSeparator()
	quit := systray.AddMenuItem("Quit spuff", "stop the broker; sheds lose their credentials")
	go func() {
		// The next rebuild closes the channel: that is not a click.
		if _, clicked := <-quit.ClickedCh; clicked {
			systray.Quit()
		}
	}()
}

func texts(items []Item, out []string) []string {
	for _, it := range items {
		if !it.Separator {
			out = append(out, it.Text())
			out = texts(it.Sub, out)
		}
	}
	return out
}

func tooltips(items []Item, out []string) []string {
	for _, it := range items {
		if !it.Separator {
			out = append(out, it.Tooltip)
			out = tooltips(it.Sub, out)
		}
	}
	return out
}

// add adds it (and its submenu) under parent and appends the new items to
// made in walk order.
func add(ctx context.Context, c Client, log *slog.Logger, parent *systray.MenuItem, it Item, poke func(), made []*systray.MenuItem) []*systray.MenuItem {
	if it.Separator {
		if parent == nil {
			systray.AddSeparator()
		}
		return made
	}
	var m *systray.MenuItem
	switch {
	case parent == nil && it.Checked != nil:
		m = systray.AddMenuItemCheckbox(it.Text(), it.Tooltip, *it.Checked)
	case parent == nil:
		m = systray.AddMenuItem(it.Text(), it.Tooltip)
	case it.Checked != nil:
		m = parent.AddSubMenuItemCheckbox(it.Text(), it.Tooltip, *it.Checked)
	default:
		m = parent.AddSubMenuItem(it.Text(), it.Tooltip)
	}
	made = append(made, m)
	for _, sub := range it.Sub {
		made = add(ctx, c, log, m, sub, poke, made)
	}
	if it.Action == nil {
		if len(it.Sub) == 0 {
			m.Disable()
		}
		return made
	}
	go func() {
		for range m.ClickedCh {
			if err := it.Action(ctx, c); err != nil {
				log.Warn("tray action failed", "item", it.Title, "err", err)
			}
			poke()
		}
	}()
	return made
}
