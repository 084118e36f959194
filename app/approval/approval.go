// Package approval decides whether a shed's request may go ahead: at once,
// on a remembered yes (a grant), or after asking a human through Touch ID,
// the tray or `spuff approve`. Identical requests in flight share one
// question; grants persist in the keychain.
package approval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/keychain"
	"github.com/spuff-dev/spuff/guest/bus"
)

// Prompter asks a human one question, beside the pending queue. Prompt blocks
// until the human answers (true: allow, false: refuse) or ctx ends. An error
// means no answer (unavailable, cancelled by us, dismissed by the system):
// the other askers keep waiting.
type Prompter interface {
	Method() string // the audit method an answer through it records, e.g. MethodTouchID
	Prompt(ctx context.Context, reason string) (bool, error)
}

// Options configure an Approver.
type Options struct {
	// Store keeps grants across restarts; nil keeps them in memory only.
	Store keychain.Store
	// Prompters are asked beside the pending queue, e.g. TouchID(); the
	// first answer from any of them, the tray or the CLI wins.
	Prompters []Prompter
	// Headless: no tray shows the queue, so each question is also logged
	// with the `spuff approve` command that answers it.
	Headless bool
	// NoPrompter: nobody will answer the queue (no tray, and no one to run
	// `spuff approve`). With no Prompters either, a request that needs
	// approval is denied at once instead of waiting for its timeout.
	NoPrompter bool
	Log        *slog.Logger
	// Now is the wall clock; Monotonic a clock that never jumps. Tests set
	// both; by default they are time.Now and the time since New.
	Now       func() time.Time
	Monotonic func() time.Duration
}

// ErrUnknown is returned for an id that names no pending request or grant
// (it may have been answered, timed out or expired meanwhile).
var ErrUnknown = api.ErrUnknown

// Approver implements the broker's approval step. It is safe for concurrent
// use; its zero value is not usable, call New.
type Approver struct {
	store      keychain.Store
	prompters  []Prompter
	headless   bool
	noPrompter bool
	log        *slog.Logger
	wall       func() time.Time
	mono       func() time.Duration

	mu      sync.Mutex
	grants  []*grant
	flights map[flightKey]*flight
	byID    map[string]*flight
	subs    map[int]chan api.Event
	nextSub int

	pmu sync.Mutex // serialises persist
}

// New builds an Approver and restores the grants saved in opts.Store.
func New(opts Options) *Approver {
	a := &Approver{
		store:      opts.Store,
		prompters:  opts.Prompters,
		headless:   opts.Headless,
		noPrompter: opts.NoPrompter,
		log:        opts.Log,
		wall:       opts.Now,
		mono:       opts.Monotonic,
		flights:    map[flightKey]*flight{},
		byID:       map[string]*flight{},
		subs:       map[int]chan api.Event{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.wall == nil {
		// Round(0) strips the monotonic reading: the wall clock is checked
		// as a wall clock, the monotonic one separately.
		a.wall = func() time.Time { return time.Now().Round(0) }
	}
	if a.mono == nil {
		start := time.Now()
		a.mono = func() time.Duration { return time.Since(start) }
	}
	a.load()
	return a
}

// flightKey makes requests identical: the same question for the same thing.
// The prompt is part of it so that a request to sign in somewhere else never
// rides on a yes the human gave to what they were shown.
type flightKey struct {
	shed, ns, class, scope, subject, prompt, policy string
}

// flight is one question in progress and everyone waiting on it.
type flight struct {
	key     flightKey
	q       Request // the first request
	rule    rule
	item    api.PendingItem
	waiters int
	done    chan struct{}
	over    bool
	method  string
	err     error
	cancel  context.CancelFunc // stops the prompters
	timer   *time.Timer
}

// Approve returns how q was approved (MethodNone, MethodCached, or the
// human's method) or an error with a wire code: DENIED or APPROVAL_TIMEOUT.
// A denial also returns the method that refused, for the audit line.
func (a *Approver) Approve(ctx context.Context, q *Request) (string, error) {
	r, ask, err := resolve(q.Policy, q.Class, q.Scope)
	if err != nil {
		return "", err
	}
	if !ask {
		return MethodNone, nil
	}
	a.mu.Lock()
	if r.caches() && a.grantedLocked(q, r) {
		a.mu.Unlock()
		return MethodCached, nil
	}
	if a.noPrompter && len(a.prompters) == 0 {
		a.mu.Unlock()
		a.log.Warn("approval: denied, nobody can be asked", "shed", q.Shed, "ns", q.NS, "op", q.Op, "class", q.Class)
		return "", bus.Errorf(bus.CodeDenied, "approval is required but nobody can be asked: run spuff-app with the tray or approve with `spuff approve`")
	}
	k := flightKey{q.Shed, q.NS, q.Class, q.Scope, q.Subject, q.Prompt, r.policy}
	f := a.flights[k]
	started := f == nil
	if started {
		f = a.startLocked(k, q, r)
	}
	f.waiters++
	f.item.Waiting = f.waiters
	// Sent under the lock, so that no answer's event can overtake it.
	change := api.ApprovalWaiting
	if started {
		change = api.ApprovalNew
	}
	item := f.item
	a.notifyLocked(api.ApprovalChange{Change: change, ID: item.ID, Pending: &item}, q.Shed)
	a.mu.Unlock()
	defer a.leave(f)

	// The broker sends the guest progress frames while this waits.
	select {
	case <-f.done:
		return f.method, f.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", bus.Errorf(bus.CodeApprovalTimeout, "gave up waiting for approval on the host")
		}
		return "", fmt.Errorf("approval: waiting for an answer: %w", ctx.Err())
	}
}

// startLocked opens a question: a pending item for the tray and CLI, the
// prompters, and the timer that ends it unanswered.
func (a *Approver) startLocked(k flightKey, q *Request, r rule) *flight {
	now := a.wall()
	prompt := q.Prompt
	if prompt == "" {
		prompt = fmt.Sprintf("%s asks for %s %s (%s)", q.Shed, q.NS, q.Op, q.Class)
	}
	f := &flight{key: k, q: *q, rule: r, done: make(chan struct{})}
	f.item = api.PendingItem{
		ID: a.newIDLocked(), Shed: q.Shed, NS: q.NS, Op: q.Op, Class: q.Class, Scope: q.Scope,
		Subject: q.Subject, Policy: r.policy, Prompt: prompt, Since: now, Expires: now.Add(r.timeout),
	}
	a.flights[k] = f
	a.byID[f.item.ID] = f

	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.timer = time.AfterFunc(r.timeout, func() {
		a.end(f, api.ApprovalExpired, false, "", bus.Errorf(bus.CodeApprovalTimeout,
			"nobody approved within %s on the host (Touch ID, the spuff tray or `spuff approve`)", r.timeout))
	})
	for _, p := range a.prompters {
		go a.ask(ctx, f, p)
	}
	attrs := []any{"id", f.item.ID, "shed", q.Shed, "ns", q.NS, "op", q.Op, "class", q.Class, "prompt", prompt, "timeout", r.timeout}
	if a.headless {
		a.log.Warn("approval: waiting for an answer; run `spuff approve "+f.item.ID+"` or `spuff deny "+f.item.ID+"`", attrs...)
	} else {
		a.log.Info("approval: waiting for an answer", attrs...)
	}
	return f
}

func (a *Approver) ask(ctx context.Context, f *flight, p Prompter) {
	allow, err := p.Prompt(ctx, f.item.Prompt)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("approval: a prompter gave no answer", "method", p.Method(), "id", f.item.ID, "err", err)
		}
		return
	}
	a.answer(f, allow, p.Method())
}

// answer ends f with a human's decision.
func (a *Approver) answer(f *flight, allow bool, method string) bool {
	if allow {
		return a.end(f, api.ApprovalAnswered, true, method, nil)
	}
	return a.end(f, api.ApprovalAnswered, false, method, bus.Errorf(bus.CodeDenied, "denied on the host (%s)", method))
}

// end settles f once and tells subscribers how (change); a later call (the
// question was already answered, timed out or withdrawn) changes nothing and
// reports false.
func (a *Approver) end(f *flight, change string, allow bool, method string, err error) bool {
	a.mu.Lock()
	settled, grant := a.endLocked(f, allow, method, err)
	a.mu.Unlock()
	if !settled {
		return false
	}
	f.timer.Stop()
	f.cancel()
	if grant {
		a.persist()
	}
	a.notify(api.ApprovalChange{Change: change, ID: f.item.ID, Allowed: allow, Method: method}, f.q.Shed)
	return true
}

// endLocked records the outcome and wakes the waiters. It reports whether
// it settled f, and whether it added a grant (which must be persisted).
func (a *Approver) endLocked(f *flight, allow bool, method string, err error) (settled, grant bool) {
	if f.over {
		return false, false
	}
	f.over = true
	delete(a.flights, f.key)
	delete(a.byID, f.item.ID)
	if allow && f.rule.caches() {
		a.addGrantLocked(f, method)
		grant = true
	}
	f.method, f.err = method, err
	close(f.done)
	a.log.Info("approval: answered", "id", f.item.ID, "allowed", allow, "method", method, "waiting", f.waiters, "err", err)
	return true, grant
}

// leave drops one waiter; the last one to leave an unanswered question
// withdraws it, so nobody is asked about a request no one waits for.
func (a *Approver) leave(f *flight) {
	a.mu.Lock()
	f.waiters--
	f.item.Waiting = f.waiters
	last := f.waiters == 0 && !f.over
	if last {
		a.endLocked(f, false, "", errors.New("approval: withdrawn"))
	} else if !f.over {
		item := f.item
		a.notifyLocked(api.ApprovalChange{Change: api.ApprovalWaiting, ID: item.ID, Pending: &item}, f.q.Shed)
	}
	a.mu.Unlock()
	if last {
		f.timer.Stop()
		f.cancel()
		a.notify(api.ApprovalChange{Change: api.ApprovalWithdrawn, ID: f.item.ID}, f.q.Shed)
	}
}

// Pending lists the open questions, oldest first.
func (a *Approver) Pending() []api.PendingItem {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]api.PendingItem, 0, len(a.byID))
	for _, f := range a.byID {
		out = append(out, f.item)
	}
	sortPending(out)
	return out
}

// Decide answers pending question id for everyone waiting on it; via is
// MethodCLI or MethodTray and is what the audit line records. The first
// answer from any asker wins: a question already answered, timed out or
// withdrawn gives ErrUnknown. A yes under per-session or per-shed also
// records a grant; a no is never remembered, the next request asks again.
func (a *Approver) Decide(id string, allow bool, via string) error {
	if via != MethodCLI && via != MethodTray {
		return fmt.Errorf("approval: cannot decide via %q (want %s or %s)", via, MethodCLI, MethodTray)
	}
	a.mu.Lock()
	f := a.byID[id]
	a.mu.Unlock()
	if f == nil || !a.answer(f, allow, via) {
		return ErrUnknown
	}
	return nil
}

// Lock is the incident switch: it revokes every grant and denies every
// pending question, and returns how many of both it ended. New requests
// ask again.
func (a *Approver) Lock() int {
	a.mu.Lock()
	revoked := a.grants
	n := len(a.grants)
	a.grants = nil
	var ended []*flight
	for _, f := range a.byID {
		a.endLocked(f, false, "", bus.Errorf(bus.CodeDenied, "denied: spuff was locked on the host (spuff lock)"))
		ended = append(ended, f)
	}
	a.mu.Unlock()
	for _, f := range ended {
		f.timer.Stop()
		f.cancel()
		a.notify(api.ApprovalChange{Change: api.ApprovalAnswered, ID: f.item.ID}, f.q.Shed)
	}
	a.persist()
	for _, g := range revoked {
		a.notify(api.ApprovalChange{Change: api.ApprovalRevoked, ID: g.ID}, g.Shed)
	}
	a.log.Warn("approval: locked: every grant revoked, every pending request denied", "grants", n, "pending", len(ended))
	return n + len(ended)
}

// Subscribe returns a channel of approval events (api.EventApproval: a
// question opened, answered, expired or withdrawn, a grant revoked) for the
// control API's one event stream, and a func that ends the subscription. A
// slow subscriber misses events rather than slowing approvals; the channel
// is never closed.
func (a *Approver) Subscribe() (<-chan api.Event, func()) {
	ch := make(chan api.Event, 64)
	a.mu.Lock()
	id := a.nextSub
	a.nextSub++
	a.subs[id] = ch
	a.mu.Unlock()
	return ch, func() {
		a.mu.Lock()
		delete(a.subs, id)
		a.mu.Unlock()
	}
}

func (a *Approver) notify(c api.ApprovalChange, shed string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notifyLocked(c, shed)
}

func (a *Approver) notifyLocked(c api.ApprovalChange, shed string) {
	e := api.Event{Kind: api.EventApproval, Shed: shed, Time: a.wall().UTC(), Approval: &c}
	for _, ch := range a.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// newIDLocked returns a short id, unique among pending questions and grants,
// that a human can type after `spuff approve`.
func (a *Approver) newIDLocked() string {
	for {
		var b [4]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		if _, ok := a.byID[id]; ok {
			continue
		}
		dup := false
		for _, g := range a.grants {
			dup = dup || g.ID == id
		}
		if !dup {
			return id
		}
	}
}
