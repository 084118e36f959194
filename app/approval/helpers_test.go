package approval

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/keychain"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// clock is a fake wall clock and a fake monotonic clock, moved separately.
type clock struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func newClock() *clock {
	return &clock{wall: time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC), mono: time.Hour}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall
}

func (c *clock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// Advance moves both clocks, as time passing does.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = c.wall.Add(d)
	c.mono += d
}

// SetWall moves the wall clock only, as a user or an attacker setting the
// date does.
func (c *clock) SetWall(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = t
}

// prompter is a scripted Prompter: it answers answer after delay, or with
// block set waits until cancelled.
type prompter struct {
	method string
	answer bool
	delay  time.Duration
	block  bool

	calls     atomic.Int32
	cancelled atomic.Int32
}

func (p *prompter) Method() string { return p.method }

func (p *prompter) Prompt(ctx context.Context, reason string) (bool, error) {
	p.calls.Add(1)
	if p.block {
		<-ctx.Done()
		p.cancelled.Add(1)
		return false, ctx.Err()
	}
	select {
	case <-time.After(p.delay):
		return p.answer, nil
	case <-ctx.Done():
		p.cancelled.Add(1)
		return false, ctx.Err()
	}
}

func newApprover(t *testing.T, c *clock, store keychain.Store, ps ...Prompter) *Approver {
	t.Helper()
	if store == nil {
		store = keychain.NewMemory()
	}
	a := New(Options{Store: store, Prompters: ps, Now: c.Now, Monotonic: c.Mono})
	return a
}

func policy(p string) config.Approval {
	return config.Approval{
		Enabled: true, Policy: p, SessionTTL: time.Hour, PromptTimeout: 10 * time.Second,
		Require: config.Require{SSHLogin: true, SSHSign: []string{"git"}, AWS: true},
	}
}

func req(shed, class, scope, subject string, p config.Approval) *Request {
	ns := map[string]string{helper.ClassSSHLogin: "ssh-agent", helper.ClassSSHSign: "ssh-agent", helper.ClassAWS: "aws-credentials", helper.ClassDocker: "docker-credentials"}[class]
	return &Request{
		ID: "id", Shed: shed, NS: ns, Op: "op", Class: class, Scope: scope, Subject: subject,
		Prompt: shed + " wants " + class + " " + scope + " with " + subject, Policy: p,
	}
}

// waitPending waits until n requests wait on one pending question, and
// returns it.
func waitPending(t *testing.T, a *Approver, n int) api.PendingItem {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps := a.Pending()
		if len(ps) == 1 && ps[0].Waiting == n {
			return ps[0]
		}
		if len(ps) > 1 {
			t.Fatalf("%d pending questions, want 1: %+v", len(ps), ps)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending question with %d waiting: %+v", n, ps)
		}
		time.Sleep(time.Millisecond)
	}
}

// approveAsync runs Approve in a goroutine; the result arrives on the channel.
type result struct {
	method string
	err    error
}

func approveAsync(ctx context.Context, a *Approver, q *Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		m, err := a.Approve(ctx, q)
		ch <- result{m, err}
	}()
	return ch
}

func get(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Approve did not return")
		return result{}
	}
}

// eventually waits for cond, which another goroutine makes true.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}
