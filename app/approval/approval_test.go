package approval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// TestPolicyMatrix runs four requests per row through an Approver whose
// human always says yes (Touch ID): subject A, A again, subject B, and A
// after the TTL. want lists the methods they get.
func TestPolicyMatrix(t *testing.T) {
	yes := func(b bool) *bool { return &b }
	hour := time.Hour
	sheds := map[string]config.ShedOverride{
		"strict":   {Approval: &config.ApprovalOverride{Policy: PolicyPerRequest}},
		"wide":     {Approval: &config.ApprovalOverride{Policy: PolicyPerShed}},
		"off":      {Approval: &config.ApprovalOverride{Enabled: yes(false)}},
		"on":       {Approval: &config.ApprovalOverride{Enabled: yes(true)}},
		"anysig":   {Approval: &config.ApprovalOverride{Require: &config.RequireOverride{SSHSign: []string{"*"}}}},
		"shortttl": {Approval: &config.ApprovalOverride{SessionTTL: &hour}},
	}
	const (
		ask    = "touchid touchid touchid touchid"
		none   = "none none none none"
		sess   = "touchid cached touchid touchid"
		pershd = "touchid cached cached touchid"
	)
	for _, c := range []struct {
		policy  string
		enabled bool
		shed    string
		class   string
		scope   string
		want    string
	}{
		{PolicyPerSession, true, "dev", helper.ClassSSHLogin, "", sess},
		{PolicyPerShed, true, "dev", helper.ClassSSHLogin, "", pershd},
		{PolicyPerRequest, true, "dev", helper.ClassSSHLogin, "", ask},
		{PolicyNone, true, "dev", helper.ClassSSHLogin, "", none},
		{"", true, "dev", helper.ClassSSHLogin, "", sess},                // default policy
		{"sometimes", true, "dev", helper.ClassSSHLogin, "", ask},        // unknown policy fails closed
		{PolicyPerSession, false, "dev", helper.ClassSSHLogin, "", none}, // disabled
		{PolicyPerSession, true, "dev", helper.ClassSSHSign, "git", sess},
		{PolicyPerShed, true, "dev", helper.ClassSSHSign, "git", pershd},
		{PolicyPerSession, true, "dev", helper.ClassSSHSign, "file", none}, // namespace not required
		{PolicyPerSession, true, "dev", helper.ClassAWS, "", sess},
		{PolicyPerRequest, true, "dev", helper.ClassAWS, "", ask},
		{PolicyPerSession, true, "dev", helper.ClassDocker, "", none}, // class not required
		{PolicyPerSession, true, "dev", "", "", none},                 // no class never asks
		// per-shed overrides
		{PolicyPerSession, true, "strict", helper.ClassSSHLogin, "", ask},
		{PolicyPerRequest, true, "wide", helper.ClassAWS, "", pershd},
		{PolicyPerShed, true, "wide", helper.ClassSSHSign, "git", pershd},
		{PolicyPerSession, true, "off", helper.ClassSSHLogin, "", none},
		{PolicyPerSession, false, "on", helper.ClassSSHLogin, "", sess},
		{PolicyPerSession, true, "anysig", helper.ClassSSHSign, "file", sess},
		{PolicyPerShed, true, "shortttl", helper.ClassSSHLogin, "", pershd},
	} {
		name := fmt.Sprintf("%s/%v/%s/%s/%s", c.policy, c.enabled, c.shed, c.class, c.scope)
		t.Run(name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Approval = policy(c.policy)
			cfg.Approval.Enabled = c.enabled
			cfg.Approval.SessionTTL = 4 * time.Hour
			cfg.Sheds = sheds
			eff := cfg.ForShed(c.shed)
			clk := newClock()
			human := &prompter{method: MethodTouchID, answer: true}
			a := newApprover(t, clk, nil, human)
			var got []string
			for i, step := range []struct {
				subject string
				advance time.Duration
			}{{"A", 0}, {"A", time.Minute}, {"B", time.Minute}, {"A", eff.Approval.SessionTTL}} {
				clk.Advance(step.advance)
				m, err := a.Approve(context.Background(), req(c.shed, c.class, c.scope, step.subject, eff.Approval))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				got = append(got, m)
			}
			if s := strings.Join(got, " "); s != c.want {
				t.Fatalf("methods = %q, want %q", s, c.want)
			}
			if n := strings.Count(c.want, MethodTouchID); int(human.calls.Load()) != n {
				t.Fatalf("human asked %d times, want %d", human.calls.Load(), n)
			}
		})
	}
}

// A grant covers only what it was given for: not another shed, not another
// class, and a per-session grant not another scope.
func TestGrantScope(t *testing.T) {
	clk := newClock()
	human := &prompter{method: MethodTouchID, answer: true}
	a := newApprover(t, clk, nil, human)
	cfg := policy(PolicyPerShed)
	cfg.Require.SSHSign = []string{"*"}
	ctx := context.Background()
	mustMethod := func(q *Request, want string) {
		t.Helper()
		if m, err := a.Approve(ctx, q); err != nil || m != want {
			t.Fatalf("Approve(%s %s %s %s) = %q, %v; want %q", q.Shed, q.Class, q.Scope, q.Subject, m, err, want)
		}
	}
	mustMethod(req("a", helper.ClassSSHLogin, "", "k1", cfg), MethodTouchID)
	mustMethod(req("a", helper.ClassSSHLogin, "", "k2", cfg), MethodCached)
	mustMethod(req("b", helper.ClassSSHLogin, "", "k1", cfg), MethodTouchID) // other shed
	mustMethod(req("a", helper.ClassAWS, "", "k1", cfg), MethodTouchID)      // other class

	sess := policy(PolicyPerSession)
	sess.Require.SSHSign = []string{"*"}
	mustMethod(req("a", helper.ClassSSHSign, "git", "k1", sess), MethodTouchID)
	mustMethod(req("a", helper.ClassSSHSign, "git", "k1", sess), MethodCached)
	mustMethod(req("a", helper.ClassSSHSign, "file", "k1", sess), MethodTouchID) // other scope
	// A per-shed grant does not answer under a per-session policy or the
	// other way round: a policy change takes effect at once.
	mustMethod(req("a", helper.ClassSSHLogin, "", "k1", sess), MethodTouchID)
	// Shortening the TTL in config shortens live grants.
	clk.Advance(30 * time.Minute)
	short := sess
	short.SessionTTL = 10 * time.Minute
	mustMethod(req("a", helper.ClassSSHSign, "git", "k1", short), MethodTouchID)
}

func TestUnknownClassFailsClosed(t *testing.T) {
	a := newApprover(t, newClock(), nil)
	_, err := a.Approve(context.Background(), req("a", "telepathy", "", "k", policy(PolicyPerSession)))
	if bus.CodeOf(err) != bus.CodeInternal {
		t.Fatalf("err = %v, want INTERNAL", err)
	}
}

// TestCoalescing: 50 concurrent identical requests make one question, one
// prompt, and 50 answers.
func TestCoalescing(t *testing.T) {
	touch := &prompter{method: MethodTouchID, block: true}
	a := newApprover(t, newClock(), nil, touch)
	cfg := policy(PolicyPerRequest)
	var wg sync.WaitGroup
	results := make(chan result, 50)
	for range 50 {
		wg.Go(func() {
			m, err := a.Approve(context.Background(), req("dev", helper.ClassSSHLogin, "", "SHA256:k", cfg))
			results <- result{m, err}
		})
	}
	item := waitPending(t, a, 50)
	if n := touch.calls.Load(); n != 1 {
		t.Fatalf("Touch ID asked %d times, want 1", n)
	}
	if err := a.Decide(item.ID, true, MethodCLI); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		if r.err != nil || r.method != MethodCLI {
			t.Errorf("answer %q, %v; want cli", r.method, r.err)
		}
		n++
	}
	if n != 50 {
		t.Fatalf("%d answers, want 50", n)
	}
	if ps := a.Pending(); len(ps) != 0 {
		t.Fatalf("pending after the answer: %+v", ps)
	}
	// The Touch ID dialog came down once the CLI answered.
	eventually(t, "Touch ID prompt cancelled", func() bool { return touch.cancelled.Load() == 1 })
	// per-request: the yes is not remembered.
	if gs := a.Grants(); len(gs) != 0 {
		t.Fatalf("per-request left grants: %+v", gs)
	}
}

// Different things are asked separately and never wait on each other; a
// request to sign for another destination never rides on a yes the human
// gave to what they were shown.
func TestNoGlobalSerialization(t *testing.T) {
	a := newApprover(t, newClock(), nil)
	cfg := policy(PolicyPerRequest)
	ctx := context.Background()
	qa := req("dev", helper.ClassSSHLogin, "", "SHA256:a", cfg)
	qb := req("dev", helper.ClassSSHLogin, "", "SHA256:b", cfg)
	qc := req("dev", helper.ClassSSHLogin, "", "SHA256:a", cfg)
	qc.Prompt = "dev wants to sign in to root@prod"
	ra, rb, rc := approveAsync(ctx, a, qa), approveAsync(ctx, a, qb), approveAsync(ctx, a, qc)
	var ps []api.PendingItem
	for deadline := time.Now().Add(5 * time.Second); len(ps) < 3; ps = a.Pending() {
		if time.Now().After(deadline) {
			t.Fatalf("pending = %+v, want 3 questions", ps)
		}
		time.Sleep(time.Millisecond)
	}
	ids := map[string]string{}
	for _, p := range ps {
		ids[p.Prompt] = p.ID
	}
	if err := a.Decide(ids[qb.Prompt], true, MethodTray); err != nil {
		t.Fatal(err)
	}
	if r := get(t, rb); r.err != nil || r.method != MethodTray {
		t.Fatalf("b = %+v", r)
	}
	if err := a.Decide(ids[qc.Prompt], false, MethodCLI); err != nil {
		t.Fatal(err)
	}
	if r := get(t, rc); bus.CodeOf(r.err) != bus.CodeDenied || r.method != MethodCLI {
		t.Fatalf("c = %+v, want DENIED by cli", r)
	}
	select {
	case r := <-ra:
		t.Fatalf("a answered without being decided: %+v", r)
	default:
	}
	if err := a.Decide(ids[qa.Prompt], true, MethodCLI); err != nil {
		t.Fatal(err)
	}
	if r := get(t, ra); r.err != nil || r.method != MethodCLI {
		t.Fatalf("a = %+v", r)
	}
}

func TestTimeout(t *testing.T) {
	touch := &prompter{method: MethodTouchID, block: true}
	a := newApprover(t, newClock(), nil, touch)
	cfg := policy(PolicyPerSession)
	cfg.PromptTimeout = 50 * time.Millisecond
	q := req("dev", helper.ClassSSHLogin, "", "k", cfg)
	m, err := a.Approve(context.Background(), q)
	if bus.CodeOf(err) != bus.CodeApprovalTimeout {
		t.Fatalf("Approve = %q, %v; want APPROVAL_TIMEOUT", m, err)
	}
	if ps := a.Pending(); len(ps) != 0 {
		t.Fatalf("timed-out question still pending: %+v", ps)
	}
	eventually(t, "Touch ID prompt cancelled at the timeout", func() bool { return touch.cancelled.Load() == 1 })
	if err := a.Decide("whatever", true, MethodCLI); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Decide after timeout = %v", err)
	}
}

// A caller that stops waiting (its guest went away) withdraws the question
// when it was the last one waiting.
func TestWithdrawn(t *testing.T) {
	touch := &prompter{method: MethodTouchID, block: true}
	a := newApprover(t, newClock(), nil, touch)
	ctx, cancel := context.WithCancel(context.Background())
	ch := approveAsync(ctx, a, req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession)))
	item := waitPending(t, a, 1)
	cancel()
	if r := get(t, ch); r.err == nil || bus.CodeOf(r.err) == "" {
		t.Fatalf("cancelled Approve = %+v", r)
	}
	if ps := a.Pending(); len(ps) != 0 {
		t.Fatalf("withdrawn question still pending: %+v", ps)
	}
	if err := a.Decide(item.ID, true, MethodCLI); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Decide on a withdrawn question = %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := a.Approve(ctx2, req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession))); bus.CodeOf(err) != bus.CodeApprovalTimeout {
		t.Fatalf("Approve past the caller's deadline = %v, want APPROVAL_TIMEOUT", err)
	}
}

func TestDenyIsNotRemembered(t *testing.T) {
	a := newApprover(t, newClock(), nil)
	cfg := policy(PolicyPerSession)
	for i, allow := range []bool{false, true} {
		ch := approveAsync(context.Background(), a, req("dev", helper.ClassAWS, "", "role", cfg))
		item := waitPending(t, a, 1)
		if err := a.Decide(item.ID, allow, MethodTray); err != nil {
			t.Fatal(err)
		}
		r := get(t, ch)
		if !allow && (bus.CodeOf(r.err) != bus.CodeDenied || r.method != MethodTray) {
			t.Fatalf("round %d: %+v, want DENIED by tray", i, r)
		}
		if allow && (r.err != nil || r.method != MethodTray) {
			t.Fatalf("round %d: %+v, want tray", i, r)
		}
		if err := a.Decide(item.ID, true, MethodCLI); !errors.Is(err, ErrUnknown) {
			t.Fatalf("second Decide = %v, want ErrUnknown", err)
		}
	}
	if err := a.Decide("x", true, "telegram"); err == nil {
		t.Fatal("Decide via an unknown method accepted")
	}
}

// Touch ID and the queue race: whoever answers first wins and the other is
// withdrawn.
func TestPromptersRace(t *testing.T) {
	touch := &prompter{method: MethodTouchID, answer: true, delay: 10 * time.Millisecond}
	a := newApprover(t, newClock(), nil, touch)
	m, err := a.Approve(context.Background(), req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession)))
	if err != nil || m != MethodTouchID {
		t.Fatalf("Approve = %q, %v; want touchid", m, err)
	}
	if gs := a.Grants(); len(gs) != 1 || gs[0].Method != MethodTouchID {
		t.Fatalf("grants = %+v", gs)
	}
	no := &prompter{method: MethodTouchID, answer: false, delay: 10 * time.Millisecond}
	a = newApprover(t, newClock(), nil, no)
	if m, err := a.Approve(context.Background(), req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession))); bus.CodeOf(err) != bus.CodeDenied || m != MethodTouchID {
		t.Fatalf("refused Touch ID = %q, %v; want DENIED by touchid", m, err)
	}
}

func TestNoPrompter(t *testing.T) {
	clk := newClock()
	a := New(Options{NoPrompter: true, Headless: true, Now: clk.Now, Monotonic: clk.Mono})
	_, err := a.Approve(context.Background(), req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession)))
	if bus.CodeOf(err) != bus.CodeDenied || !strings.Contains(err.Error(), "nobody can be asked") {
		t.Fatalf("Approve = %v, want DENIED naming why", err)
	}
	if len(a.Pending()) != 0 {
		t.Fatal("NoPrompter left a pending question")
	}
	// Unrequired requests still pass.
	if m, err := a.Approve(context.Background(), req("dev", helper.ClassDocker, "", "r", policy(PolicyPerSession))); err != nil || m != MethodNone {
		t.Fatalf("unrequired = %q, %v", m, err)
	}
	// With Touch ID there is someone to ask.
	a = New(Options{NoPrompter: true, Prompters: []Prompter{&prompter{method: MethodTouchID, answer: true}}})
	if m, err := a.Approve(context.Background(), req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession))); err != nil || m != MethodTouchID {
		t.Fatalf("NoPrompter with Touch ID = %q, %v", m, err)
	}
}

func TestHeadlessLogsTheCommand(t *testing.T) {
	var logs bytes.Buffer
	clk := newClock()
	a := New(Options{Headless: true, Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: clk.Now, Monotonic: clk.Mono})
	ch := approveAsync(context.Background(), a, req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession)))
	item := waitPending(t, a, 1)
	if !strings.Contains(logs.String(), "spuff approve "+item.ID) {
		t.Fatalf("headless log does not say how to approve:\n%s", logs.String())
	}
	a.Decide(item.ID, true, MethodCLI)
	get(t, ch)
}

// Moving the wall clock back extends nothing; moving it forward past the
// expiry ends the grant early. Both clocks must agree a grant is live.
func TestMonotonicExpiry(t *testing.T) {
	human := &prompter{method: MethodTouchID, answer: true}
	clk := newClock()
	a := newApprover(t, clk, nil, human)
	cfg := policy(PolicyPerSession) // TTL 1h
	q := func() string {
		m, err := a.Approve(context.Background(), req("dev", helper.ClassSSHLogin, "", "k", cfg))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	start := clk.Now()
	if m := q(); m != MethodTouchID {
		t.Fatalf("first = %s", m)
	}
	clk.Advance(50 * time.Minute)
	if m := q(); m != MethodCached {
		t.Fatalf("at 50m = %s, want cached", m)
	}
	// 11 more real minutes pass while the wall clock is set two hours back.
	clk.Advance(11 * time.Minute)
	clk.SetWall(start.Add(-2 * time.Hour))
	if m := q(); m != MethodTouchID {
		t.Fatalf("after 61m with the wall clock set back = %s, want a new prompt", m)
	}
	if gs := a.Grants(); len(gs) != 1 || !gs[0].Granted.Equal(start.Add(-2*time.Hour)) {
		t.Fatalf("grants = %+v, want only the new one", gs)
	}
	// Wall clock forward past the expiry, monotonic barely moved.
	clk.Advance(time.Minute)
	clk.SetWall(clk.Now().Add(2 * time.Hour))
	if m := q(); m != MethodTouchID {
		t.Fatalf("wall clock past expiry = %s, want a new prompt", m)
	}
}

func TestLockAndRevoke(t *testing.T) {
	human := &prompter{method: MethodTouchID, answer: true}
	a := newApprover(t, newClock(), nil, human)
	cfg := policy(PolicyPerSession)
	ctx := context.Background()
	for _, k := range []string{"k1", "k2"} {
		if _, err := a.Approve(ctx, req("dev", helper.ClassSSHLogin, "", k, cfg)); err != nil {
			t.Fatal(err)
		}
	}
	gs := a.Grants()
	if len(gs) != 2 {
		t.Fatalf("grants = %+v", gs)
	}
	if err := a.Revoke(gs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(gs[0].ID); !errors.Is(err, ErrUnknown) {
		t.Fatalf("second Revoke = %v", err)
	}
	if m, _ := a.Approve(ctx, req("dev", helper.ClassSSHLogin, "", gs[0].Subject, cfg)); m != MethodTouchID {
		t.Fatalf("revoked grant still answers: %s", m)
	}

	// Lock: every grant gone, every pending question denied.
	b := newApprover(t, newClock(), nil)
	b.grants = a.grants
	ch1 := approveAsync(ctx, b, req("dev", helper.ClassAWS, "", "r1", cfg))
	ch2 := approveAsync(ctx, b, req("other", helper.ClassAWS, "", "r2", cfg))
	for deadline := time.Now().Add(5 * time.Second); len(b.Pending()) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("requests did not become pending")
		}
	}
	if n := b.Lock(); n != 4 {
		t.Fatalf("Lock = %d, want 2 grants + 2 pending", n)
	}
	for _, ch := range []<-chan result{ch1, ch2} {
		if r := get(t, ch); bus.CodeOf(r.err) != bus.CodeDenied {
			t.Fatalf("pending request after Lock = %+v, want DENIED", r)
		}
	}
	if len(b.Grants()) != 0 || len(b.Pending()) != 0 {
		t.Fatalf("after Lock: grants %+v, pending %+v", b.Grants(), b.Pending())
	}
}

// TestSubscribe: every change of the queue and the grants reaches a
// subscriber as an approval event, in order, with what changed.
func TestSubscribe(t *testing.T) {
	a := newApprover(t, newClock(), nil)
	ch, stop := a.Subscribe()
	defer stop()
	next := func(what, change string) *api.ApprovalChange {
		t.Helper()
		select {
		case e := <-ch:
			if e.Kind != api.EventApproval || e.Approval == nil || e.Approval.Change != change || e.Shed != "dev" || e.Time.IsZero() {
				t.Fatalf("%s: got %+v (change %+v), want a %q approval event for dev", what, e, e.Approval, change)
			}
			return e.Approval
		case <-time.After(5 * time.Second):
			t.Fatalf("no event for %s", what)
		}
		return nil
	}
	res := approveAsync(context.Background(), a, req("dev", helper.ClassSSHLogin, "", "k", policy(PolicyPerSession)))
	opened := next("a new question", api.ApprovalNew)
	item := waitPending(t, a, 1)
	if opened.ID != item.ID || opened.Pending == nil || opened.Pending.Prompt != item.Prompt || opened.Pending.Shed != "dev" {
		t.Fatalf("new: %+v (pending %+v), want the pending item %+v", opened, opened.Pending, item)
	}
	a.Decide(item.ID, true, MethodTray)
	get(t, res)
	if c := next("the answer", api.ApprovalAnswered); c.ID != item.ID || !c.Allowed || c.Method != MethodTray {
		t.Fatalf("answered: %+v", c)
	}
	g := a.Grants()[0]
	if err := a.Revoke(g.ID); err != nil {
		t.Fatal(err)
	}
	if c := next("the revoked grant", api.ApprovalRevoked); c.ID != g.ID {
		t.Fatalf("revoked: %+v, want grant %s", c, g.ID)
	}

	quick := policy(PolicyPerRequest)
	quick.PromptTimeout = 50 * time.Millisecond
	res = approveAsync(context.Background(), a, req("dev", helper.ClassAWS, "", "role", quick))
	id := next("a question that times out", api.ApprovalNew).ID
	if c := next("the timeout", api.ApprovalExpired); c.ID != id || c.Allowed {
		t.Fatalf("expired: %+v", c)
	}
	get(t, res)

	ctx, cancel := context.WithCancel(context.Background())
	res = approveAsync(ctx, a, req("dev", helper.ClassAWS, "", "role", policy(PolicyPerRequest)))
	id = next("a question nobody waits for", api.ApprovalNew).ID
	ctx2, cancel2 := context.WithCancel(context.Background())
	res2 := approveAsync(ctx2, a, req("dev", helper.ClassAWS, "", "role", policy(PolicyPerRequest)))
	if c := next("a second request on the question", api.ApprovalWaiting); c.ID != id || c.Pending == nil || c.Pending.Waiting != 2 {
		t.Fatalf("joined: %+v (pending %+v), want %s with 2 waiting", c, c.Pending, id)
	}
	cancel2()
	if c := next("one of the two leaving", api.ApprovalWaiting); c.ID != id || c.Pending == nil || c.Pending.Waiting != 1 {
		t.Fatalf("left: %+v (pending %+v), want %s with 1 waiting", c, c.Pending, id)
	}
	get(t, res2)
	cancel()
	if c := next("the withdrawal", api.ApprovalWithdrawn); c.ID != id {
		t.Fatalf("withdrawn: %+v", c)
	}
	get(t, res)

	stop()
	a.Lock()
	select {
	case e := <-ch:
		t.Fatalf("event after unsubscribing: %+v", e)
	default:
	}
}
