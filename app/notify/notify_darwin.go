package notify

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// osa posts notifications through osascript's display notification, which
// needs neither cgo nor an entitlement. It offers no actions: on macOS the
// tray menu (and Touch ID) answer approvals.
type osa struct {
	app    string
	events chan Event
	once   sync.Once
}

var _ Notifier = (*osa)(nil)

func newPlatform(opts Options) (Notifier, error) {
	if _, err := exec.LookPath("osascript"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return &osa{app: opts.AppName, events: make(chan Event)}, nil
}

func (o *osa) Notify(ctx context.Context, m Notification) (uint32, error) {
	script := "display notification " + asString(bound(m.Body)) + " with title " + asString(o.app) + " subtitle " + asString(bound(m.Title))
	if err := exec.CommandContext(ctx, "osascript", "-e", script).Run(); err != nil {
		return 0, fmt.Errorf("notify: osascript: %w", err)
	}
	return 0, nil
}

func (o *osa) Dismiss(context.Context, uint32) error { return nil }
func (o *osa) Events() <-chan Event                  { return o.events }
func (o *osa) Close() error                          { o.once.Do(func() { close(o.events) }); return nil }

// asString is an AppleScript string literal: only \ and " are escaped
// there, and control characters are dropped rather than interpreted.
func asString(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
