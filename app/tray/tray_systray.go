//go:build linux || (darwin && cgo) || windows

package tray

import (
	"context"
	"log/slog"
	"time"

	"fyne.io/systray"

	"github.com/spuff-dev/spuff/app/broker"
)

// Run shows the tray until ctx ends or the user picks Quit. It must be
// called from the main goroutine (macOS requires it).
func Run(ctx context.Context, c Client, log *slog.Logger) error {
	if err := available(); err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	onReady := func() {
		systray.SetTitle("spuff")
		systray.SetTooltip("spuff: credentials for your sheds")
		go func() {
			for ctx.Err() == nil {
				_ = c.Events(ctx, func(broker.Event) error { poke(); return nil })
				time.Sleep(time.Second)
			}
		}()
		go func() {
			tick := time.NewTicker(2 * time.Second) // pending prompts expire without an event
			defer tick.Stop()
			for {
				render(ctx, c, log, poke)
				select {
				case <-ctx.Done():
					systray.Quit()
					return
				case <-changed:
				case <-tick.C:
				}
			}
		}()
	}
	systray.Run(onReady, func() {})
	return nil
}

func render(ctx context.Context, c Client, log *slog.Logger, poke func()) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sheds, err := c.Sheds(qctx)
	pending, perr := c.Pending(qctx)
	if err == nil {
		err = perr
	}
	systray.ResetMenu()
	if len(pending) > 0 {
		systray.SetTitle("spuff ⚠")
	} else {
		systray.SetTitle("spuff")
	}
	for _, it := range Build(sheds, pending, err) {
		add(ctx, c, log, nil, it, poke)
	}
	systray.AddSeparator()
	quit := systray.AddMenuItem("Quit spuff", "stop the broker; sheds lose their credentials")
	go func() {
		<-quit.ClickedCh
		systray.Quit()
	}()
}

func add(ctx context.Context, c Client, log *slog.Logger, parent *systray.MenuItem, it Item, poke func()) {
	if it.Separator {
		if parent == nil {
			systray.AddSeparator()
		}
		return
	}
	var m *systray.MenuItem
	if parent == nil {
		m = systray.AddMenuItem(it.Title, it.Tooltip)
	} else {
		m = parent.AddSubMenuItem(it.Title, it.Tooltip)
	}
	for _, sub := range it.Sub {
		add(ctx, c, log, m, sub, poke)
	}
	if it.Action == nil {
		if len(it.Sub) == 0 {
			m.Disable()
		}
		return
	}
	go func() {
		for range m.ClickedCh {
			if err := it.Action(ctx, c); err != nil {
				log.Warn("tray action failed", "item", it.Title, "err", err)
			}
			poke()
		}
	}()
}
