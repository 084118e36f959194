package tray

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
)

// asks counts the control API's answers the menu asked for.
type asks struct {
	Client
	sheds, pending, made, status int
	madeErr                      error
}

func (a *asks) Sheds(context.Context) ([]api.Attachment, error) {
	a.sheds++
	return []api.Attachment{{Name: "a", State: api.StateConnected, Requests: int64(a.sheds)}}, nil
}
func (a *asks) Pending(context.Context) ([]api.PendingItem, error) { a.pending++; return nil, nil }
func (a *asks) Made(context.Context) (*api.MadeList, error) {
	a.made++
	if a.madeErr != nil {
		return nil, a.madeErr
	}
	return &api.MadeList{Sheds: []api.MadeShed{{Name: "a", Provider: "hetzner", State: "ready"}}}, nil
}
func (a *asks) Status(context.Context) (*api.Status, error) {
	a.status++
	return &api.Status{Audit: &api.AuditHealth{Durability: "batch"}}, nil
}

// Answered requests redraw the counters without asking for the made
// sheds again, whose listing asks every cloud provider's API: a shed busy
// with a thousand requests costs the clouds nothing. What each event can
// change is asked again; the rest is drawn from the last answers.
func TestRequestEventsDoNotListTheClouds(t *testing.T) {
	c := &asks{}
	var a answers
	ctx := context.Background()
	v := a.refresh(ctx, c, needFor(api.Event{Kind: api.EventOpen}), nil)
	if c.sheds != 1 || c.pending != 1 || c.made != 1 || c.status != 1 || len(v.Made) != 1 {
		t.Fatalf("the opening event asked %+v, view %+v; want everything once", *c, v)
	}
	var w wants
	for range 1000 {
		w.add(needFor(api.Event{Kind: api.EventRequest, Shed: "a", NS: "ssh-agent", Op: "sign", Result: "ok"}))
	}
	v = a.refresh(ctx, c, w.take(), nil)
	if c.made != 1 || c.pending != 1 || c.sheds != 2 || c.status != 2 {
		t.Fatalf("1000 answered requests asked %+v; want sheds and status once more, never made or pending", *c)
	}
	if len(v.Made) != 1 || v.Sheds[0].Requests != 2 || v.Audit == nil {
		t.Fatalf("the counters' redraw lost the last answers: %+v", v)
	}
	if n := w.take(); n != 0 {
		t.Fatalf("taken wants were not cleared: %b", n)
	}
	for kind, want := range map[string]need{
		api.EventShed: needSheds, api.EventApproval: needPending,
		api.EventProvision: needAll, api.EventIdle: needAll, api.EventOpen: needAll, "from-a-newer-spuff-app": needAll,
	} {
		if got := needFor(api.Event{Kind: kind}); got != want {
			t.Errorf("needFor(%s) = %b, want %b", kind, got, want)
		}
	}

	// An error stays shown until the answer that gave it is asked again.
	c.madeErr = errors.New("state.db: disk I/O error")
	if v = a.refresh(ctx, c, needMade, nil); v.Err == nil {
		t.Fatal("a failed made listing is not shown")
	}
	if v = a.refresh(ctx, c, countersOnly, nil); v.Err == nil {
		t.Fatal("a counters' redraw hid the made listing's error")
	}
	c.madeErr = nil
	if v = a.refresh(ctx, c, needAll, nil); v.Err != nil {
		t.Fatalf("the error outlived a good answer: %v", v.Err)
	}
}

// Counters alone redraw at most once per counterEvery; anything else
// redraws at once.
func TestCountersRedrawAtMostOncePerInterval(t *testing.T) {
	now := time.Now()
	if d := wait(countersOnly, time.Time{}, now); d != 0 {
		t.Errorf("first redraw waits %v", d)
	}
	if d := wait(countersOnly, now.Add(-300*time.Millisecond), now); d != counterEvery-300*time.Millisecond {
		t.Errorf("counters 300ms after a redraw wait %v, want %v", d, counterEvery-300*time.Millisecond)
	}
	if d := wait(needSheds, now.Add(-2*counterEvery), now); d != 0 {
		t.Errorf("counters long after a redraw wait %v", d)
	}
	for _, n := range []need{needPending, needMade, needAll, needSheds | needPending} {
		if d := wait(n, now, now); d != 0 {
			t.Errorf("%b right after a redraw waits %v, want none", n, d)
		}
	}
}
