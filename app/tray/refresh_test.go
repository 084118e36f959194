package tray

import (
	"context"
	"errors"
	"fmt"
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
	var needs eventNeeds
	ctx := context.Background()
	v := a.refresh(ctx, c, needs.of(api.Event{Kind: api.EventOpen}), nil)
	if c.sheds != 1 || c.pending != 1 || c.made != 1 || c.status != 1 || len(v.Made) != 1 {
		t.Fatalf("the opening event asked %+v, view %+v; want everything once", *c, v)
	}
	var w wants
	for range 1000 {
		w.add(needs.of(api.Event{Kind: api.EventRequest, Shed: "a", NS: "ssh-agent", Op: "sign", Result: "ok"}))
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
		api.EventIdle: needAll, api.EventOpen: needAll, "from-a-newer-spuff-app": needAll,
	} {
		if got := needs.of(api.Event{Kind: kind}); got != want {
			t.Errorf("needs.of(%s) = %b, want %b", kind, got, want)
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

// An image build prints thousands of steps, all in the state "creating":
// they redraw the step without asking for the made sheds again. A move to
// another state asks for everything, as does a reconnect (which may have
// missed a move), after which the same state counts as new.
func TestProvisioningStepsListTheCloudsOnlyWhenTheStateMoves(t *testing.T) {
	c := &asks{}
	var a answers
	var needs eventNeeds
	var w wants
	ctx := context.Background()
	step := func(shed, state, words string) api.Event {
		return api.Event{Kind: api.EventProvision, Shed: shed, State: state, Provision: &api.ProvisionStep{Step: words}}
	}
	w.add(needs.of(step("web", "creating", "preparing the debian-12 base image")))
	a.refresh(ctx, c, w.take(), nil)
	if c.made != 1 {
		t.Fatalf("a shed's first step asked made %d times, want 1", c.made)
	}
	for i := range 5000 {
		w.add(needs.of(step("web", "creating", fmt.Sprintf("image: Get:%d deb.example/debian bookworm", i))))
	}
	n := w.take()
	if n != needRedraw {
		t.Fatalf("5000 steps in one state need %b, want a redraw alone", n)
	}
	v := a.refresh(ctx, c, n, map[string]string{"web": "image: Get:4999"})
	if c.made != 1 || c.sheds != 1 || c.status != 1 || c.pending != 1 || v.Steps["web"] == "" || len(v.Made) != 1 {
		t.Fatalf("the steps' redraw asked %+v, view %+v; want nothing asked and the step drawn", *c, v)
	}
	if got := needs.of(step("other", "creating", "writing the seed")); got != needAll {
		t.Fatalf("another shed's first step needs %b, want everything", got)
	}
	if got := needs.of(step("web", "booting", "starting QEMU")); got != needAll {
		t.Fatalf("a move to booting needs %b, want everything", got)
	}
	needs.of(api.Event{Kind: api.EventOpen})
	if got := needs.of(step("web", "booting", "waiting for ssh")); got != needAll {
		t.Fatalf("the first step after a reconnect needs %b, want everything", got)
	}
	if d := wait(needRedraw, time.Now(), time.Now()); d == 0 {
		t.Error("a steps' redraw right after another is not held back")
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
