package tray

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/notify"
)

// NoticeClient is what the approval notifications need of the control API.
type NoticeClient interface {
	Pending(ctx context.Context) ([]api.PendingItem, error)
	Decide(ctx context.Context, id string, allow bool, via string) error
	Events(ctx context.Context, fn func(api.Event) error) error
}

// Action keys of an approval notification.
const (
	keyApprove = "approve"
	keyDeny    = "deny"
)

// Notices posts a desktop notification for every request waiting for
// approval, with Approve and Deny, and answers it through c as the tray
// does; a question answered, expired or withdrawn elsewhere takes its
// notification down. It runs until ctx ends.
func Notices(ctx context.Context, c NoticeClient, n notify.Notifier, log *slog.Logger) {
	b := &notices{c: c, n: n, log: log, byPending: map[string]uint32{}, byNote: map[uint32]string{}, byIdle: map[string]uint32{}}
	go b.answer(ctx)
	for ctx.Err() == nil {
		err := c.Events(ctx, b.on)
		if ctx.Err() == nil {
			log.Debug("tray: notices' event stream ended; reopening", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// notices maps each open question to the notification showing it.
type notices struct {
	c   NoticeClient
	n   notify.Notifier
	log *slog.Logger

	mu        sync.Mutex
	byPending map[string]uint32 // question id -> notification id
	byNote    map[uint32]string // notification id -> question id (0 = the desktop gives none)
	byIdle    map[string]uint32 // shed -> its idle notice's notification
}

func (b *notices) on(e api.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch {
	case e.Kind == api.EventOpen:
		// What changed while the stream was down is read whole.
		pending, err := b.c.Pending(ctx)
		if err != nil {
			b.log.Debug("tray: reading pending requests for notifications", "err", err)
			return nil
		}
		open := map[string]bool{}
		for i := range pending {
			open[pending[i].ID] = true
			b.post(ctx, &pending[i])
		}
		b.mu.Lock()
		var gone []string
		for id := range b.byPending {
			if !open[id] {
				gone = append(gone, id)
			}
		}
		b.mu.Unlock()
		for _, id := range gone {
			b.dismiss(ctx, id)
		}
	case e.Kind == api.EventApproval && e.Approval != nil:
		switch e.Approval.Change {
		case api.ApprovalNew:
			if e.Approval.Pending != nil {
				b.post(ctx, e.Approval.Pending)
			}
		case api.ApprovalAnswered, api.ApprovalExpired, api.ApprovalWithdrawn:
			b.dismiss(ctx, e.Approval.ID)
		}
	case e.Kind == api.EventProvision && e.Provision != nil:
		b.lifecycle(ctx, e)
	case e.Kind == api.EventIdle && e.Idle != nil:
		b.idle(ctx, e)
	}
	return nil
}

// lifecycle tells of a made shed that became ready or failed. The name,
// step and error are the provider's and the guest's words: each is made
// printable (and bounded) before spuff adds its own line breaks.
func (b *notices) lifecycle(ctx context.Context, e api.Event) {
	name := api.Printable(e.Shed)
	var n notify.Notification
	switch e.State {
	case stateReady:
		n = notify.Notification{Title: name + " is ready", Body: "Open a terminal from the spuff menu, or run: spuff ssh " + name}
	case stateFailed:
		why := e.Provision.Step
		if e.Provision.Error != "" {
			why += ": " + e.Provision.Error
		}
		n = notify.Notification{Title: name + " failed", Body: clip(api.Printable(why), maxTooltip) + "\n`spuff down " + name + "` removes it."}
	default:
		return
	}
	if _, err := b.n.Notify(ctx, n); err != nil {
		b.log.Warn("tray: posting a shed notification", "shed", name, "err", err)
	}
}

// idle warns before the host ends an idle shed, takes the warning down
// when the shed is used again, and tells what the end did.
func (b *notices) idle(ctx context.Context, e api.Event) {
	name, ch := api.Printable(e.Shed), e.Idle
	b.mu.Lock()
	old, shown := b.byIdle[e.Shed]
	delete(b.byIdle, e.Shed)
	b.mu.Unlock()
	if shown && old != 0 {
		if err := b.n.Dismiss(ctx, old); err != nil {
			b.log.Debug("tray: dismissing an idle notice", "err", err)
		}
	}
	idle := roundLeft(time.Duration(ch.IdleSeconds) * time.Second)
	var n notify.Notification
	switch ch.Change {
	case api.IdleNotice:
		what := "stopped"
		if ch.Action == api.IdleDestroy {
			what = "destroyed"
		}
		n = notify.Notification{
			Title: fmt.Sprintf("%s will be %s in %s", name, what, roundLeft(time.Duration(ch.LeftSeconds)*time.Second)),
			Body:  fmt.Sprintf("It has been idle for %s. Use it (log in, or spuff ssh %s) to keep it.", idle, name),
		}
	case api.IdleStop, api.IdleDestroy:
		what := map[string]string{api.IdleStop: "stopped", api.IdleDestroy: "destroyed"}[ch.Change]
		n = notify.Notification{Title: fmt.Sprintf("%s was %s", name, what), Body: fmt.Sprintf("It was idle for %s.", idle)}
		if ch.Error != "" {
			n = notify.Notification{Title: fmt.Sprintf("%s could not be %s", name, what), Body: clip(api.Printable(ch.Error), maxTooltip), Urgent: true}
		}
	default: // IdleCancel: the notice is down, nothing more to say
		return
	}
	id, err := b.n.Notify(ctx, n)
	if err != nil {
		b.log.Warn("tray: posting an idle notification", "shed", name, "err", err)
		return
	}
	if ch.Change == api.IdleNotice {
		b.mu.Lock()
		b.byIdle[e.Shed] = id
		b.mu.Unlock()
	}
}

// post shows p unless it is showing already.
func (b *notices) post(ctx context.Context, p *api.PendingItem) {
	// The lock is held across Notify: a desktop may report a click before
	// Notify has returned the notification's id, and answer must not
	// look the id up before it is known.
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, shown := b.byPending[p.ID]; shown {
		return
	}
	body := fmt.Sprintf("%s %s/%s", p.Shed, p.NS, p.Op)
	if p.Subject != "" {
		body += " · " + p.Subject
	}
	id, err := b.n.Notify(ctx, notify.Notification{
		Title:   api.Printable(p.Prompt),
		Body:    api.Printable(body),
		Actions: []notify.Action{{Key: keyApprove, Label: "Approve"}, {Key: keyDeny, Label: "Deny"}},
		Urgent:  true,
	})
	if err != nil {
		b.log.Warn("tray: posting the approval notification", "err", err)
		return
	}
	b.byPending[p.ID] = id
	if id != 0 {
		b.byNote[id] = p.ID
	}
}

// dismiss takes down the notification of question id, if one shows.
func (b *notices) dismiss(ctx context.Context, id string) {
	b.mu.Lock()
	note, shown := b.byPending[id]
	delete(b.byPending, id)
	delete(b.byNote, note)
	b.mu.Unlock()
	if !shown || note == 0 {
		return
	}
	if err := b.n.Dismiss(ctx, note); err != nil {
		// The desktop may have closed it already (a click closes it).
		b.log.Debug("tray: dismissing a notification", "err", err)
	}
}

// answer turns the notifications' buttons into decisions.
func (b *notices) answer(ctx context.Context) {
	for {
		var ev notify.Event
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-b.n.Events():
			if !ok {
				return
			}
		}
		b.mu.Lock()
		id, known := b.byNote[ev.ID]
		if ev.Closed {
			// Closed by the user or the desktop: the question stays in the
			// menu, its answer needs no dismissal, and a reopened stream
			// does not post it again.
			delete(b.byNote, ev.ID)
			if known {
				b.byPending[id] = 0
			}
		}
		b.mu.Unlock()
		if !known || (ev.Key != keyApprove && ev.Key != keyDeny) {
			continue
		}
		if err := b.c.Decide(ctx, id, ev.Key == keyApprove, api.ViaTray); err != nil {
			b.log.Warn("tray: answering from a notification", "err", err)
		}
	}
}
