// Package notify shows desktop notifications for spuff-app: a request
// waiting for approval (with Approve and Deny where the desktop offers
// actions), a shed ready or failed, and a shed about to be ended for
// idling. On Linux it speaks org.freedesktop.Notifications on the session
// bus; on macOS it asks the system to post the notification; elsewhere it
// is unavailable and the tray alone shows what happens.
package notify

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"
)

// Action is a button on a notification; Key comes back when it is clicked.
type Action struct {
	Key   string
	Label string
}

// Notification is one message. Title and Body are plain text: the
// notifier escapes them for desktops that read markup, and the caller has
// already made anything a shed chose printable.
type Notification struct {
	Title   string
	Body    string
	Actions []Action
	// Urgent asks the desktop to keep it on screen (approval prompts).
	Urgent bool
	// Replaces is the ID of an earlier notification this one updates; 0 = new.
	Replaces uint32
}

// Event is a notification's action clicked (Key set) or the notification
// closed (Closed).
type Event struct {
	ID     uint32
	Key    string
	Closed bool
}

// Notifier posts notifications and reports what the user did with them.
type Notifier interface {
	// Notify shows n and returns its ID.
	Notify(ctx context.Context, n Notification) (uint32, error)
	// Dismiss takes a notification down (its prompt was answered elsewhere).
	Dismiss(ctx context.Context, id uint32) error
	// Events delivers clicks and closes until Close.
	Events() <-chan Event
	Close() error
}

// ErrUnavailable means this desktop has no notification service spuff can use.
var ErrUnavailable = errors.New("notify: no desktop notification service")

// Options configure New.
type Options struct {
	// AppName is what the desktop shows as the sender.
	AppName string
	// BusAddress is the session bus (Linux); "" = $DBUS_SESSION_BUS_ADDRESS.
	BusAddress string
}

// New connects to the platform's notification service.
func New(opts Options) (Notifier, error) {
	if opts.AppName == "" {
		opts.AppName = "spuff"
	}
	return newPlatform(opts)
}

// maxBody bounds what reaches a desktop popup; longer text is cut.
const maxBody = 1000

// bound cuts text longer than a popup shows, on a character boundary.
func bound(s string) string {
	if len(s) <= maxBody {
		return s
	}
	cut := maxBody
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// plain escapes the few characters notification servers read as markup,
// so text shows as it was written.
func plain(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(bound(s))
}
