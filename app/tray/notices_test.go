package tray

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/notify"
)

// streamClient plays the control API: Events delivers what the test sends.
type streamClient struct {
	pending []api.PendingItem
	events  chan api.Event
	decided chan string
}

func (c *streamClient) Pending(context.Context) ([]api.PendingItem, error) { return c.pending, nil }
func (c *streamClient) Decide(_ context.Context, id string, allow bool, via string) error {
	c.decided <- fmt.Sprintf("%s %t %s", id, allow, via)
	return nil
}
func (c *streamClient) Events(ctx context.Context, fn func(api.Event) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-c.events:
			_ = fn(e)
		}
	}
}

// notes plays the desktop: it records what is shown and lets the test click.
type notes struct {
	mu     sync.Mutex
	next   uint32
	shown  []notify.Notification
	closed []uint32
	events chan notify.Event
	// clickFirst, if set, is clicked before Notify returns, as a desktop
	// may signal a click ahead of the method's reply.
	clickFirst string
}

var _ notify.Notifier = (*notes)(nil)

func (n *notes) Notify(_ context.Context, m notify.Notification) (uint32, error) {
	n.mu.Lock()
	n.next++
	id := n.next
	n.shown = append(n.shown, m)
	n.mu.Unlock()
	if n.clickFirst != "" {
		n.events <- notify.Event{ID: id, Key: n.clickFirst}
	}
	return id, nil
}
func (n *notes) Dismiss(_ context.Context, id uint32) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = append(n.closed, id)
	return nil
}
func (n *notes) Events() <-chan notify.Event { return n.events }
func (n *notes) Close() error                { return nil }

func (n *notes) state() (shown []notify.Notification, closed []uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append(shown, n.shown...), append(closed, n.closed...)
}

func (n *notes) until(t *testing.T, what string, ok func(shown []notify.Notification, closed []uint32) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if ok(n.state()) {
			return
		}
	}
	shown, closed := n.state()
	t.Fatalf("never %s: shown %+v, closed %v", what, shown, closed)
}

func approval(change, id string, p *api.PendingItem) api.Event {
	return api.Event{Kind: api.EventApproval, Approval: &api.ApprovalChange{Change: change, ID: id, Pending: p}}
}

func TestNoticesPostAnswerAndDismissApprovals(t *testing.T) {
	c := &streamClient{
		pending: []api.PendingItem{{ID: "p0", Shed: "old", NS: "ssh", Op: "sign", Prompt: "old wants to log in"}},
		events:  make(chan api.Event),
		decided: make(chan string, 4),
	}
	n := &notes{events: make(chan notify.Event)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Notices(ctx, c, n, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// The stream's opening event shows what was already waiting.
	c.events <- api.Event{Kind: api.EventOpen}
	n.until(t, "showed the request waiting before the stream opened", func(s []notify.Notification, _ []uint32) bool { return len(s) == 1 })

	hostile := &api.PendingItem{ID: "p1", Shed: "web", NS: "ssh", Op: "sign", Subject: "git\x1b[2J", Prompt: "web wants to sign\x1b]0;owned\x07"}
	c.events <- approval(api.ApprovalNew, "p1", hostile)
	c.events <- approval(api.ApprovalNew, "p1", hostile) // a repeat shows nothing new
	c.events <- api.Event{Kind: api.EventRequest, Shed: "web"}
	n.until(t, "showed the new request", func(s []notify.Notification, _ []uint32) bool { return len(s) >= 2 })
	shown, _ := n.state()
	if len(shown) != 2 {
		t.Fatalf("a repeated event posted again: %+v", shown)
	}
	got := shown[1]
	if strings.ContainsAny(got.Title+got.Body, "\x1b\x07") || got.Title != api.Printable(hostile.Prompt) {
		t.Errorf("the shed's text reached the desktop unescaped: %q / %q", got.Title, got.Body)
	}
	if !strings.Contains(got.Body, "web ssh/sign") || !got.Urgent {
		t.Errorf("notification %+v: want the shed and operation in the body, urgent", got)
	}
	if len(got.Actions) != 2 || got.Actions[0].Key != keyApprove || got.Actions[1].Key != keyDeny {
		t.Errorf("actions %+v, want approve then deny", got.Actions)
	}

	// Clicks answer the question they belong to, as the tray.
	n.events <- notify.Event{ID: 2, Key: keyApprove}
	if d := <-c.decided; d != "p1 true tray" {
		t.Errorf("Approve on p1's notification decided %q", d)
	}
	n.events <- notify.Event{ID: 1, Key: keyDeny}
	if d := <-c.decided; d != "p0 false tray" {
		t.Errorf("Deny on p0's notification decided %q", d)
	}
	n.events <- notify.Event{ID: 99, Key: keyApprove} // not ours
	n.events <- notify.Event{ID: 2, Key: "default"}   // the body clicked

	// Answered elsewhere: its notification goes away.
	c.events <- approval(api.ApprovalAnswered, "p1", nil)
	n.until(t, "dismissed the answered request", func(_ []notify.Notification, c []uint32) bool { return len(c) == 1 && c[0] == 2 })

	// One the user closed is not dismissed again when it expires.
	n.events <- notify.Event{ID: 1, Closed: true}
	n.events <- notify.Event{ID: 99, Closed: true} // taken once the close above is handled
	c.events <- approval(api.ApprovalExpired, "p0", nil)
	p3 := &api.PendingItem{ID: "p3", Shed: "web", Prompt: "web wants AWS"}
	c.events <- approval(api.ApprovalNew, "p3", p3)
	c.events <- approval(api.ApprovalWithdrawn, "p3", nil)
	n.until(t, "dismissed the withdrawn request", func(_ []notify.Notification, c []uint32) bool { return len(c) == 2 })
	if _, closed := n.state(); closed[1] != 3 {
		t.Errorf("dismissed %v, want 2 then 3 (the closed p0 left alone)", closed)
	}
	select {
	case d := <-c.decided:
		t.Errorf("a click on no known action decided %q", d)
	default:
	}
}

func TestNoticesOnReopenDismissWhatWasAnsweredMeanwhile(t *testing.T) {
	c := &streamClient{events: make(chan api.Event), decided: make(chan string, 1)}
	n := &notes{events: make(chan notify.Event)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Notices(ctx, c, n, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.events <- approval(api.ApprovalNew, "p1", &api.PendingItem{ID: "p1", Prompt: "x"})
	n.until(t, "showed p1", func(s []notify.Notification, _ []uint32) bool { return len(s) == 1 })
	c.events <- api.Event{Kind: api.EventOpen} // nothing pending any more
	n.until(t, "dismissed p1 on reopen", func(_ []notify.Notification, c []uint32) bool { return len(c) == 1 && c[0] == 1 })
}

func TestNoticesTakeAClickThatOvertakesTheNotifyReply(t *testing.T) {
	c := &streamClient{events: make(chan api.Event), decided: make(chan string, 1)}
	n := &notes{events: make(chan notify.Event), clickFirst: keyApprove}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Notices(ctx, c, n, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.events <- approval(api.ApprovalNew, "p1", &api.PendingItem{ID: "p1", Prompt: "x"})
	select {
	case d := <-c.decided:
		if d != "p1 true tray" {
			t.Fatalf("decided %q", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a click that came before Notify returned was lost")
	}
}
