package provisioning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/provisioning/state"
)

// Idle audit ops (ns provision) and IdleEvent changes. idle_stop ends a
// local shed (its disk is kept), idle_destroy a cloud one (a stopped cloud
// VM still bills); idle_cancel is activity that arrived during the notice.
const (
	OpIdleNotice  = "idle_notice"
	OpIdleCancel  = "idle_cancel"
	OpIdleStop    = "idle_stop"
	OpIdleDestroy = "idle_destroy"
)

// IdleEvent is one idle action, for the control API's event stream.
type IdleEvent struct {
	Shed   string
	Op     string        // one of the OpIdle… constants
	Idle   time.Duration // how long the shed had been idle
	Left   time.Duration // until the end (idle_notice)
	Action string        // what the end does or did: "stop" | "destroy"
	Error  string        // the end failed
}

// IdleOptions build an Idler. Manager, Limits, Ask and Audit are required.
type IdleOptions struct {
	Manager *Manager
	// Limits is the config's idle timeout (0 = never) and notice for a
	// shed; a row's own timeout (spuff up --idle-timeout) wins over it.
	Limits func(name string) (timeout, notice time.Duration)
	// Ask reads the shed's one idle clock over its bus (agent/idle): how
	// long it has been idle. An error means the bus is not attached or did
	// not answer; the shed then idles by the host's clock.
	Ask func(ctx context.Context, name string) (time.Duration, error)
	// Tell shows text to the shed's logged-in users (agent/notice); nil
	// tells nobody. A failure is logged: the event and audit line still go.
	Tell func(ctx context.Context, name, text string) error
	// Detach drops the shed's attachment before its end.
	Detach func(name string)
	Audit  Auditor
	// Events receives each action; nil drops them.
	Events func(IdleEvent)
	Now    func() time.Time
	// Every is how often each shed is asked (1m).
	Every time.Duration
	Log   *slog.Logger
}

// Idler ends idle sheds (DESIGN §2.9, §8): it asks each ready shed's idle
// clock every minute, warns at timeout − notice and ends the shed at
// timeout. It alone decides; a shed that stops answering keeps idling.
type Idler struct {
	o IdleOptions

	mu    sync.Mutex
	sheds map[string]*idleView
}

// idleView is what the host knows of one ready shed's idleness.
type idleView struct {
	// active is the newest activity the host knows of: the guest's clock
	// when its bus answers, else what it last said, else when the host
	// first saw the shed ready.
	active   time.Time
	noticed  time.Time // when the notice went out; zero: none is out
	timeout  time.Duration
	notice   time.Duration
	provider string
}

// NewIdler checks o and returns an Idler; Run starts it.
func NewIdler(o IdleOptions) (*Idler, error) {
	if o.Manager == nil || o.Limits == nil || o.Ask == nil || o.Audit == nil {
		return nil, errors.New("provisioning: Idler needs Manager, Limits, Ask and Audit")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Every <= 0 {
		o.Every = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Idler{o: o, sheds: map[string]*idleView{}}, nil
}

// idleAction is what one round does for a shed.
type idleAction int

const (
	idleNone idleAction = iota
	idleNotice
	idleCancel
	idleEnd
)

// end is when the shed ends, and whether it ever does: active + timeout,
// but never before a notice that is out has run its full length.
func (v *idleView) end() (time.Time, bool) {
	if v.timeout <= 0 {
		return time.Time{}, false
	}
	end := v.active.Add(v.timeout)
	if !v.noticed.IsZero() {
		if n := v.noticed.Add(v.notice); n.After(end) {
			end = n
		}
	}
	return end, true
}

// decide is the idle rule at now, on what the host knows.
func (v *idleView) decide(now time.Time) idleAction {
	end, ends := v.end()
	switch {
	case !v.noticed.IsZero() && (!ends || v.active.After(v.noticed)):
		// Activity after the notice (or the timeout turned off) lifts it.
		return idleCancel
	case !ends:
		return idleNone
	case v.noticed.IsZero() && v.notice > 0 && !now.Before(v.active.Add(v.timeout-v.notice)):
		// Even a shed found idle past its end (spuff-app was not running)
		// gets its full notice first.
		return idleNotice
	case !now.Before(end):
		return idleEnd
	}
	return idleNone
}

// Run asks every ready shed each Every until ctx ends.
func (d *Idler) Run(ctx context.Context) {
	t := time.NewTicker(d.o.Every)
	defer t.Stop()
	for {
		d.Round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round asks each ready shed once and acts on the answers.
func (d *Idler) Round(ctx context.Context) {
	rows, err := d.o.Manager.o.DB.Sheds(ctx)
	if err != nil {
		d.o.Log.Warn("provisioning: idle: reading the sheds", "err", err)
		return
	}
	ready := map[string]bool{}
	for _, s := range rows {
		if s.State != state.Ready {
			continue
		}
		ready[s.Name] = true
		d.round(ctx, s)
	}
	d.mu.Lock()
	for name := range d.sheds {
		if !ready[name] {
			// Stopped, failed, gone or being worked on: a later ready
			// starts its clock afresh.
			delete(d.sheds, name)
		}
	}
	d.mu.Unlock()
}

func (d *Idler) round(ctx context.Context, s state.Shed) {
	timeout, notice := d.limits(s)
	askCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	idle, askErr := d.o.Ask(askCtx, s.Name)
	cancel()
	now := d.o.Now()

	d.mu.Lock()
	v, ok := d.sheds[s.Name]
	if !ok {
		v = &idleView{active: now}
		d.sheds[s.Name] = v
	}
	if askErr == nil {
		v.active = now.Add(-max(idle, 0))
	} else {
		d.o.Log.Debug("provisioning: idle: the shed's clock cannot be read; idling by the host's", "shed", s.Name, "err", askErr)
	}
	v.timeout, v.notice, v.provider = timeout, notice, s.Provider
	act := v.decide(now)
	view := *v
	switch act {
	case idleNotice:
		v.noticed = now
		view.noticed = now
	case idleCancel:
		v.noticed = time.Time{}
	case idleEnd:
		delete(d.sheds, s.Name)
	}
	d.mu.Unlock()

	idleFor := now.Sub(view.active).Round(time.Second)
	switch act {
	case idleNotice:
		end, _ := view.end()
		left := end.Sub(now).Round(time.Second)
		verb := d.endVerb(s)
		if d.o.Tell != nil {
			text := fmt.Sprintf("spuff: this shed has been idle for %s; spuff will %s it in %s unless it is used (type in a terminal, or run something).", idleFor, verb, left)
			if err := d.o.Tell(ctx, s.Name, text); err != nil {
				d.o.Log.Info("provisioning: idle: the notice could not be shown in the shed", "shed", s.Name, "err", err)
			}
		}
		d.audit(ctx, s.Name, OpIdleNotice, ResultOK, fmt.Sprintf("idle %s of %s; %s in %s", idleFor, timeout, verb, left))
		d.event(IdleEvent{Shed: s.Name, Op: OpIdleNotice, Idle: idleFor, Left: left, Action: verb})
	case idleCancel:
		d.audit(ctx, s.Name, OpIdleCancel, ResultOK, fmt.Sprintf("active %s ago; the notice is lifted", idleFor))
		d.event(IdleEvent{Shed: s.Name, Op: OpIdleCancel, Idle: idleFor})
	case idleEnd:
		d.finish(ctx, s, idleFor, timeout)
	}
}

// limits is the shed's idle timeout and notice: its own timeout when it
// has one, the config's otherwise. A notice as long as the timeout would
// warn at once, so it is cut to a tenth.
func (d *Idler) limits(s state.Shed) (time.Duration, time.Duration) {
	timeout, notice := d.o.Limits(s.Name)
	if s.IdleTimeout != nil {
		timeout = *s.IdleTimeout
	}
	if timeout > 0 && notice >= timeout {
		notice = timeout / 10
	}
	return timeout, max(notice, 0)
}

// endVerb says what the end of s does: stop a shed its provider can keep
// stopped, destroy any other.
func (d *Idler) endVerb(s state.Shed) string {
	if p, err := d.o.Manager.o.Provider(s.Provider); err == nil && p.Capabilities().StartStop {
		return "stop"
	}
	return "destroy"
}

func (d *Idler) finish(ctx context.Context, s state.Shed, idleFor, timeout time.Duration) {
	verb := d.endVerb(s)
	op := OpIdleDestroy
	if verb == "stop" {
		op = OpIdleStop
	}
	if d.o.Detach != nil {
		d.o.Detach(s.Name)
	}
	err := d.o.Manager.End(context.WithoutCancel(ctx), s.Name)
	detail := fmt.Sprintf("idle %s of %s; %s", idleFor, timeout, s.Provider)
	ev := IdleEvent{Shed: s.Name, Op: op, Idle: idleFor, Action: verb}
	result := ResultOK
	if err != nil {
		result, detail, ev.Error = ResultError, detail+": "+err.Error(), err.Error()
		d.o.Log.Error("provisioning: idle: ending the shed failed", "shed", s.Name, "err", err)
	} else {
		d.o.Log.Info("provisioning: idle: the shed was ended", "shed", s.Name, "action", verb, "idle", idleFor)
	}
	d.audit(ctx, s.Name, op, result, detail)
	d.event(ev)
}

func (d *Idler) audit(ctx context.Context, shed, op, result, detail string) {
	if err := d.o.Audit.Audit(context.WithoutCancel(ctx), AuditLine{Shed: shed, Op: op, Result: result, Detail: detail}); err != nil {
		d.o.Log.Error("provisioning: idle: an audit line was not written", "shed", shed, "op", op, "err", err)
	}
}

func (d *Idler) event(e IdleEvent) {
	if d.o.Events != nil {
		d.o.Events(e)
	}
}

// Left is how long shed name has before its idle end, as of the last
// round; false when it never ends or has not been asked yet.
func (d *Idler) Left(name string) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.sheds[name]
	if !ok {
		return 0, false
	}
	end, ends := v.end()
	if !ends {
		return 0, false
	}
	return max(end.Sub(d.o.Now()), 0), true
}

// Timeout is the idle timeout in force for shed name, as of the last round.
func (d *Idler) Timeout(name string) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.sheds[name]
	if !ok {
		return 0, false
	}
	return v.timeout, true
}
