package provisioning

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/provisioning/sshconn"
	"github.com/spuff-dev/spuff/provisioning/state"
)

// Event is one step of a shed's lifecycle, for the control API's event
// stream: the step's name, how long the operation has run, and the state
// the row is in.
type Event struct {
	Shed    string        `json:"shed"`
	Step    string        `json:"step"`
	State   string        `json:"state,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
	Error   string        `json:"error,omitempty"`
}

// Bootstrapper makes a booted machine a shed: over ssh it pins the host
// key, waits for cloud-init, installs the guest binaries and attaches the
// bus (provisioning/bootstrap). It returns the machine's architecture.
type Bootstrapper interface {
	Bootstrap(ctx context.Context, s state.Shed, progress func(step string)) (arch string, err error)
}

// Audit line values for provisioning (DESIGN §6): ns "provision", one
// line per lifecycle action with its result.
const (
	AuditNS = "provision"

	OpUp    = "up"
	OpDown  = "down"
	OpStart = "start"
	OpStop  = "stop"

	ResultOK     = "ok"
	ResultDenied = "denied"
	ResultError  = "error"
)

// AuditLine is one provisioning line of the audit log. Detail is the
// provider, and on failure the reason after it.
type AuditLine struct {
	Shed, Op, Result, Detail string
}

// Auditor writes provisioning's audit lines (app/audit's writer, adapted
// in app/host). An error means the line is not written.
type Auditor interface {
	Audit(ctx context.Context, l AuditLine) error
}

// refused marks an action the Manager declined without touching a machine
// (a taken name, a provider that cannot stop): audited as denied.
type refused struct{ error }

func (r refused) Unwrap() error { return r.error }

// UserData renders the cloud-init user-data of a shed.
type UserData func(ctx context.Context, name, user string) ([]byte, error)

// ManagerOptions build a Manager. DB, Provider, UserData, Bootstrap, Audit
// and KnownHosts are required.
type ManagerOptions struct {
	DB *state.DB
	// Audit receives one line per up, down, start and stop.
	Audit Auditor
	// Provider returns the provider registered under name.
	Provider  func(name string) (Provider, error)
	UserData  UserData
	Bootstrap Bootstrapper
	// LoginKey, when set, returns the host identity's public key
	// (authorized_keys form) for providers whose API registers one.
	LoginKey func() (string, error)
	// Events receives every step; nil drops them.
	Events func(Event)
	Owner  string
	// KnownHosts is the host's known_hosts for sheds (~/.spuff/known_hosts),
	// where each shed's key is kept under its alias.
	KnownHosts string
	Log        *slog.Logger
	// BootTimeout bounds the wait for Running with an ssh address (10m).
	BootTimeout time.Duration
	// Poll is how often Get is asked while booting (1s).
	Poll time.Duration
}

// Manager runs sheds' lifecycles (DESIGN §8) on state.db. It knows no
// provider by name: every call goes through the Provider contract.
type Manager struct {
	o ManagerOptions

	mu       sync.Mutex
	busy     map[string]*claim // the action under way on each shed
	quitting bool              // Quit has begun: no new action
}

// claim is the one lifecycle action under way on a shed in this process.
type claim struct {
	op     string // OpUp, OpDown, OpStart or OpStop
	cancel context.CancelCauseFunc
	done   chan struct{} // closed once the action has returned
}

// Why an action failed that something else stopped: a down of its shed,
// or spuff-app quitting. They are only ever wrapped in an error of this
// package, and a row's reason shows them as they are.
var (
	errStoppedByDown = errors.New("stopped by `spuff down`")
	errQuit          = errors.New("spuff-app quit")
)

// claim makes op the action under way on name, under a context a down can
// end, and returns its release. A down stops the action under way and
// waits for it to return, so it removes all that action made (an up's
// machine, even one whose create answer it never got); any other action
// beside one under way is refused, as state alone cannot refuse it in
// time: two actions would write the row over each other.
func (m *Manager) claim(ctx context.Context, name, op string, progress func(string)) (context.Context, func(), error) {
	m.mu.Lock()
	for {
		if m.quitting {
			m.mu.Unlock()
			return nil, nil, refused{fmt.Errorf("provisioning: spuff-app is quitting; run `spuff %s %s` again once it is back", op, name)}
		}
		c, ok := m.busy[name]
		if !ok {
			break
		}
		if c.op == OpDown {
			m.mu.Unlock()
			return nil, nil, refused{fmt.Errorf("provisioning: %s is being removed (a `spuff down %s` is under way)", name, name)}
		}
		if op != OpDown {
			m.mu.Unlock()
			return nil, nil, refused{fmt.Errorf("provisioning: a `spuff %s %s` is under way; wait for it, or `spuff down %s` stops it and removes the shed", c.op, name, name)}
		}
		c.cancel(errStoppedByDown)
		m.mu.Unlock()
		progress("stopping the " + c.op + " under way")
		<-c.done
		m.mu.Lock()
	}
	cctx, cancel := context.WithCancelCause(ctx)
	c := &claim{op: op, cancel: cancel, done: make(chan struct{})}
	if m.busy == nil {
		m.busy = map[string]*claim{}
	}
	m.busy[name] = c
	m.mu.Unlock()
	return cctx, func() {
		m.mu.Lock()
		delete(m.busy, name)
		m.mu.Unlock()
		cancel(nil)
		close(c.done)
	}, nil
}

// claimed runs act as op, the action under way on name (see claim), and
// writes op's audit line before it lets go of the shed, so that whoever
// waits for the action (a down, Quit) finds the line written. provider
// names the provider for that line where the row may not (an up refused
// before its row exists); "" takes the row's.
func (m *Manager) claimed(ctx context.Context, name, op, provider string, act func(context.Context) (state.Shed, error)) (state.Shed, error) {
	progress := func(step string) { run{m: m, name: name, start: time.Now()}.step(step, state.Destroying) }
	actx, release, err := m.claim(ctx, name, op, progress)
	var s state.Shed
	if err == nil {
		defer release()
		s, err = act(actx)
		if why := stopCause(actx); err != nil && why != nil && !errors.Is(err, why) {
			err = fmt.Errorf("provisioning: %w: %w", why, err)
		}
	}
	if provider == "" {
		provider = s.Provider
	}
	return s, m.audit(ctx, op, name, provider, s.Reason, err)
}

// stopCause is why an action's context ended when a down or the quit ended
// it, else nil.
func stopCause(ctx context.Context) error {
	if why := context.Cause(ctx); errors.Is(why, errStoppedByDown) || errors.Is(why, errQuit) {
		return why
	}
	return nil
}

// Quit stops every up, start and stop under way (cause: spuff-app quit),
// so that each fails now with its own row and audit line and its provider
// removes what it made where it can, rather than dying half-way with the
// process; a down under way is let finish. It refuses any new action and
// waits for those under way until ctx ends. What is still under way then
// is marked failed at the next start (MarkInterrupted).
func (m *Manager) Quit(ctx context.Context) error {
	m.mu.Lock()
	m.quitting = true
	var under []*claim
	for _, c := range m.busy {
		if c.op != OpDown {
			c.cancel(errQuit)
		}
		under = append(under, c)
	}
	m.mu.Unlock()
	for _, c := range under {
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("provisioning: a %s was still under way at quit: %w", c.op, ctx.Err())
		}
	}
	return nil
}

// underWay says whether an action is under way on name.
func (m *Manager) underWay(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.busy[name] != nil
}

// NewManager checks o and returns a Manager.
func NewManager(o ManagerOptions) (*Manager, error) {
	if o.DB == nil || o.Provider == nil || o.UserData == nil || o.Bootstrap == nil || o.Audit == nil || o.KnownHosts == "" {
		return nil, errors.New("provisioning: Manager needs DB, Provider, UserData, Bootstrap, Audit and KnownHosts")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.BootTimeout <= 0 {
		o.BootTimeout = 10 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	return &Manager{o: o}, nil
}

// UpRequest names the shed to make.
type UpRequest struct {
	Name, Provider, User string
	// IdleTimeout is the shed's own (spuff up --idle-timeout); nil
	// follows the config.
	IdleTimeout *time.Duration
}

type run struct {
	m     *Manager
	name  string
	start time.Time
}

func (r run) step(step, st string) {
	if r.m.o.Events != nil {
		r.m.o.Events(Event{Shed: r.name, Step: step, State: st, Elapsed: time.Since(r.start)})
	}
}

// Up makes a shed: the row first, then the provider's machine, the boot
// wait and the bootstrap. Any failure leaves the row failed with its
// reason, for `spuff down` to clean.
func (m *Manager) Up(ctx context.Context, req UpRequest) (state.Shed, error) {
	return m.claimed(ctx, req.Name, OpUp, req.Provider, func(ctx context.Context) (state.Shed, error) { return m.up(ctx, req) })
}

// audit writes op's line and returns err, joined with the audit error when
// the line could not be written: that is never silent.
func (m *Manager) audit(ctx context.Context, op, name, provider, reason string, err error) error {
	if aerr := m.writeLine(ctx, auditLine(op, name, provider, reason, err)); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// writeLine writes l, logging and returning the error when it could not.
func (m *Manager) writeLine(ctx context.Context, l AuditLine) error {
	if aerr := m.o.Audit.Audit(context.WithoutCancel(ctx), l); aerr != nil {
		m.o.Log.Error("provisioning: an audit line was not written", "shed", l.Shed, "op", l.Op, "err", aerr)
		return fmt.Errorf("provisioning: the audit line of %s %s was not written: %w", l.Op, l.Shed, aerr)
	}
	return nil
}

// auditLine is op's line: ok with the provider, or its failure and why.
func auditLine(op, name, provider, reason string, err error) AuditLine {
	l := AuditLine{Shed: name, Op: op, Result: ResultOK, Detail: provider}
	if err != nil {
		l.Result = ResultError
		if errors.As(err, new(refused)) {
			l.Result = ResultDenied
		}
		if reason == "" {
			reason = err.Error()
		}
		l.Detail = reason
		if provider != "" {
			l.Detail = provider + ": " + reason
		}
	}
	return l
}

// taken says why an up of name is refused, with what to do for the state
// its shed is in.
func (m *Manager) taken(ctx context.Context, name string) error {
	s, err := m.o.DB.GetShed(ctx, name)
	if err != nil {
		return fmt.Errorf("provisioning: a shed named %q exists; `spuff list` shows it, and `spuff down %s` removes it", name, name)
	}
	switch s.State {
	case state.Ready:
		return fmt.Errorf("provisioning: shed %q is ready; `spuff ssh %s` logs in, or `spuff down %s` first to make it anew", name, name, name)
	case state.Stopped:
		return fmt.Errorf("provisioning: shed %q is stopped; `spuff start %s` starts it", name, name)
	case state.Failed:
		why := ""
		if s.Reason != "" {
			why = " (" + s.Reason + ")"
		}
		if strings.Contains(s.Reason, "`spuff ") {
			// The reason already names what to run for how it failed.
			return fmt.Errorf("provisioning: shed %q failed%s", name, why)
		}
		if p, err := m.o.Provider(s.Provider); err == nil && p.Capabilities().StartStop && s.ProviderID != "" && s.Arch != "" {
			// It was made once (bootstrapped), so its disk holds work: a
			// down would lose what a start keeps.
			return fmt.Errorf("provisioning: shed %q failed%s; `spuff start %s` tries again, or `spuff down %s` removes it", name, why, name, name)
		}
		return fmt.Errorf("provisioning: shed %q failed%s; `spuff down %s` removes what is left, then `spuff up %s` makes it anew", name, why, name, name)
	default:
		return fmt.Errorf("provisioning: shed %q is %s; `spuff list` shows it, and `spuff down %s` removes it", name, s.State, name)
	}
}

func (m *Manager) up(ctx context.Context, req UpRequest) (state.Shed, error) {
	r := run{m: m, name: req.Name, start: time.Now()}
	p, err := m.o.Provider(req.Provider)
	if err != nil {
		return state.Shed{}, err
	}
	s := state.Shed{Name: req.Name, Provider: req.Provider, State: state.Creating, User: req.User,
		HostKeyAlias: "spuff-" + req.Name, IdleTimeout: req.IdleTimeout}
	var hk *HostKey
	if p.Capabilities().PrivateSeed {
		// The host makes the shed's host key and pins it before the first
		// connection: a local shed is never trust-on-first-use.
		k, pub, err := newHostKey()
		if err != nil {
			return state.Shed{}, err
		}
		hk, s.HostKey = k, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	}
	if err := m.o.DB.CreateShed(ctx, s); err != nil {
		if errors.Is(err, state.ErrExists) {
			return state.Shed{}, refused{m.taken(ctx, req.Name)}
		}
		return state.Shed{}, err
	}
	r.step("row written", s.State)
	if hk != nil {
		pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(s.HostKey))
		if err := sshconn.Pin(m.o.KnownHosts, s.HostKeyAlias, pub); err != nil {
			return m.fail(ctx, r, s, "pinning the host key", err)
		}
	} else if err := sshconn.Forget(m.o.KnownHosts, s.HostKeyAlias); err != nil {
		// A key left by an earlier shed of this name must not refuse this one.
		return m.fail(ctx, r, s, "clearing an old host key", err)
	}
	ud, err := m.o.UserData(ctx, req.Name, req.User)
	if err != nil {
		return m.fail(ctx, r, s, "rendering user-data", err)
	}
	creq := CreateRequest{Name: req.Name, Labels: Labels(req.Name, m.o.Owner), UserData: ud, HostKey: hk,
		Progress: func(step string) { r.step(step, state.Creating) }}
	if m.o.LoginKey != nil {
		if creq.LoginKey, err = m.o.LoginKey(); err != nil {
			return m.fail(ctx, r, s, "reading the login key", err)
		}
	}
	r.step("creating the machine", s.State)
	mc, err := p.Create(ctx, creq)
	if mc.ID != "" {
		// Written at once, even beside an error, so down can end it.
		s.ProviderID = mc.ID
		if uerr := m.o.DB.UpdateShed(context.WithoutCancel(ctx), s); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}
	if err != nil {
		return m.fail(ctx, r, s, "creating the machine", err)
	}
	s.State = state.Booting
	if err := m.o.DB.UpdateShed(ctx, s); err != nil {
		return s, err
	}
	r.step("booting", s.State)
	if s, err = m.waitRunning(ctx, p, s); err != nil {
		return m.fail(ctx, r, s, "booting", err)
	}
	return m.bootstrap(ctx, r, p, s)
}

func (m *Manager) bootstrap(ctx context.Context, r run, p Provider, s state.Shed) (state.Shed, error) {
	var arch string
	if !p.Capabilities().ServesBus { // a provider serving the bus has no sshd to bootstrap over
		s.State = state.Bootstrapping
		if err := m.o.DB.UpdateShed(ctx, s); err != nil {
			return s, err
		}
		r.step("bootstrapping", s.State)
		var err error
		if arch, err = m.o.Bootstrap.Bootstrap(ctx, s, func(step string) { r.step(step, state.Bootstrapping) }); err != nil {
			return m.fail(ctx, r, s, "bootstrapping", err)
		}
	}
	s.Arch, s.State, s.Reason = arch, state.Ready, ""
	if err := m.o.DB.UpdateShed(ctx, s); err != nil {
		return s, err
	}
	r.step("ready", s.State)
	return s, nil
}

func (m *Manager) waitRunning(ctx context.Context, p Provider, s state.Shed) (state.Shed, error) {
	ctx, cancel := context.WithTimeout(ctx, m.o.BootTimeout)
	defer cancel()
	for {
		mc, err := p.Get(ctx, s.ProviderID)
		if err != nil {
			return s, err
		}
		switch mc.State {
		case Running:
			if mc.SSHAddr != "" || (mc.BusURL != "" && p.Capabilities().ServesBus) {
				s.SSHAddr = mc.SSHAddr
				return s, m.o.DB.UpdateShed(ctx, s)
			}
		case Failed, Stopped:
			return s, fmt.Errorf("provisioning: the machine is %s (%s)", mc.State, mc.Status)
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("provisioning: no running machine with an ssh address after %s: %w", m.o.BootTimeout, ctx.Err())
		case <-time.After(m.o.Poll):
		}
	}
}

// MarkInterrupted fails every row a lifecycle step was under way for when
// spuff-app last stopped (a crash, a reboot): no step of this process is,
// and canPower refuses to start or stop a row mid-step, so without this
// it would stay mid-step for good. Each such row also gets the audit line
// (an error) its action never wrote. Call it once, when this process alone
// owns state.db (after it holds the one-per-home lock) and before it serves.
func (m *Manager) MarkInterrupted(ctx context.Context) error {
	rows, err := m.o.DB.Sheds(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range rows {
		op, next := interrupted(s)
		if op == "" {
			continue
		}
		m.o.Log.Warn("provisioning: a shed was left mid-step by an earlier spuff-app; marking it failed", "shed", s.Name, "state", s.State)
		s.State, s.Reason = state.Failed, "spuff-app stopped while it was "+s.State+"; "+next
		if err := m.o.DB.UpdateShed(ctx, s); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, m.writeLine(ctx, auditLine(op, s.Name, s.Provider, s.Reason, errInterrupted)))
	}
	return errors.Join(errs...)
}

// errInterrupted stands for the error an interrupted action never returned.
var errInterrupted = errors.New("provisioning: interrupted")

// interrupted says, for a row left mid-step, the action that was cut short
// and what to run; for a row at rest, op is "".
func interrupted(s state.Shed) (op, next string) {
	down := "`spuff down " + s.Name + "` removes it"
	switch s.State {
	case state.Creating, state.Booting, state.Bootstrapping:
		return OpUp, down
	case state.Starting, state.Stopping:
		op = OpStart
		if s.State == state.Stopping {
			op = OpStop
		}
		return op, "`spuff start " + s.Name + "` or `spuff stop " + s.Name + "` tries again; " + down
	case state.Destroying:
		return OpDown, "`spuff down " + s.Name + "` finishes removing it"
	}
	return "", ""
}

func (m *Manager) fail(ctx context.Context, r run, s state.Shed, step string, err error) (state.Shed, error) {
	why := stopCause(ctx)
	switch {
	case why != nil && errors.Is(err, context.Canceled):
		// What the step said on the way out is only that it was stopped.
		err = why
	case why != nil:
		err = fmt.Errorf("%w: %w", why, err)
	}
	s.State, s.Reason = state.Failed, step+": "+err.Error()
	// The row must record the failure even when the caller has given up.
	if uerr := m.o.DB.UpdateShed(context.WithoutCancel(ctx), s); uerr != nil {
		m.o.Log.Error("provisioning: a failed shed's row could not be updated", "shed", s.Name, "err", uerr)
	}
	if m.o.Events != nil {
		m.o.Events(Event{Shed: s.Name, Step: step, State: s.State, Elapsed: time.Since(r.start), Error: err.Error()})
	}
	if errors.Is(why, errStoppedByDown) {
		return s, fmt.Errorf("provisioning: %s %s: %w", step, s.Name, err) // the down under way removes it
	}
	return s, fmt.Errorf("provisioning: %s %s: %w; `spuff down %s` removes it", step, s.Name, err, s.Name)
}

// Down destroys a shed's machine and forgets its row. When the provider
// errs the row stays (failed, with the reason) unless force.
func (m *Manager) Down(ctx context.Context, name string, force bool) error {
	_, err := m.claimed(ctx, name, OpDown, "", func(ctx context.Context) (state.Shed, error) { return m.down(ctx, name, force) })
	return err
}

func (m *Manager) down(ctx context.Context, name string, force bool) (state.Shed, error) {
	r := run{m: m, name: name, start: time.Now()}
	s, err := m.row(ctx, name)
	if err != nil {
		return s, err
	}
	s.Reason = ""
	s.State = state.Destroying
	if err := m.o.DB.UpdateShed(ctx, s); err != nil {
		return s, err
	}
	r.step("destroying", s.State)
	if err := m.deleteMachines(ctx, s, func(step string) { r.step(step, state.Destroying) }); err != nil && !force {
		s, ferr := m.fail(ctx, r, s, "destroying", err)
		return s, fmt.Errorf("%w (or `spuff down --force %s` to forget it anyway)", ferr, name)
	} else if err != nil {
		m.o.Log.Warn("provisioning: forgetting a shed the provider could not delete", "shed", name, "err", err)
	}
	if err := sshconn.Forget(m.o.KnownHosts, s.HostKeyAlias); err != nil {
		m.o.Log.Warn("provisioning: the shed's host key stays in known_hosts", "shed", name, "err", err)
	}
	if err := m.o.DB.DeleteShed(ctx, name); err != nil {
		return s, err
	}
	r.step("gone", state.Gone)
	return s, nil
}

// deleteMachines deletes the row's machine or, when the row has no machine
// id (a crash right after Create, or a Create that failed before making
// anything), the machines the provider labels with the shed's name; when
// there are none, what a Create left before its machine existed.
func (m *Manager) deleteMachines(ctx context.Context, s state.Shed, progress func(string)) error {
	p, err := m.o.Provider(s.Provider)
	if err != nil {
		return err
	}
	ids := []string{s.ProviderID}
	if s.ProviderID == "" {
		ms, err := p.List(ctx)
		if err != nil {
			return err
		}
		ids = nil
		for _, mc := range ms {
			if mc.Labels[Label] == s.Name && m.ours(mc) {
				ids = append(ids, mc.ID)
			}
		}
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, p.Delete(ctx, id))
	}
	if len(ids) == 0 {
		errs = append(errs, m.sweep(ctx, p, s.Name, progress))
	}
	return errors.Join(errs...)
}

// sweep removes what a Create of the shed left with no machine, where the
// provider makes such things.
func (m *Manager) sweep(ctx context.Context, p Provider, name string, progress func(string)) error {
	sw, ok := p.(Sweeper)
	if !ok {
		return nil
	}
	progress("no machine at " + p.Name() + "; removing what an interrupted up left there")
	req := SweepRequest{Name: name, Labels: Labels(name, m.o.Owner)}
	if m.o.LoginKey != nil {
		if k, err := m.o.LoginKey(); err != nil {
			m.o.Log.Warn("provisioning: a login key registered for the shed may stay at the provider (the host's identity cannot be read now)", "shed", name, "err", err)
		} else {
			req.LoginKey = k
		}
	}
	if err := sw.Sweep(ctx, req); err != nil && !errors.Is(err, ErrUnsupported) {
		return err
	}
	return nil
}

// ours says whether a labelled machine is this owner's: a shared cloud
// account holds other developers' sheds too.
func (m *Manager) ours(mc Machine) bool {
	o := mc.Labels[OwnerLabel]
	return o == "" || m.o.Owner == "" || o == m.o.Owner
}

// Stop powers a local shed off, keeping its disk.
func (m *Manager) Stop(ctx context.Context, name string) error {
	_, err := m.claimed(ctx, name, OpStop, "", func(ctx context.Context) (state.Shed, error) {
		return m.power(ctx, name, state.Stopping, state.Stopped, Provider.Stop)
	})
	return err
}

// canPower refuses a start or stop that would undo a step under way, or
// redo one already done: starting a ready shed would bootstrap it again,
// writing a new agent token while its running daemon keeps the old one.
func canPower(s state.Shed, during string) error {
	switch {
	case during == state.Starting && s.State == state.Ready:
		return refused{fmt.Errorf("provisioning: %s is already running; `spuff ssh %s` opens a shell", s.Name, s.Name)}
	case during == state.Stopping && s.State == state.Stopped:
		return refused{fmt.Errorf("provisioning: %s is already stopped; `spuff start %s` boots it", s.Name, s.Name)}
	case s.State == state.Ready, s.State == state.Stopped, s.State == state.Failed:
		return nil
	}
	return refused{fmt.Errorf("provisioning: %s is %s; wait until it is ready or stopped (`spuff list` shows its state)", s.Name, s.State)}
}

// Start powers a stopped shed on and bootstraps it again.
func (m *Manager) Start(ctx context.Context, name string) error {
	_, err := m.claimed(ctx, name, OpStart, "", func(ctx context.Context) (state.Shed, error) { return m.start(ctx, name) })
	return err
}

func (m *Manager) start(ctx context.Context, name string) (state.Shed, error) {
	if s, err := m.power(ctx, name, state.Starting, state.Booting, Provider.Start); err != nil {
		return s, err
	}
	s, p, err := m.load(ctx, name)
	if err != nil {
		return s, err
	}
	r := run{m: m, name: name, start: time.Now()}
	if s, err = m.waitRunning(ctx, p, s); err != nil {
		return m.fail(ctx, r, s, "booting", err)
	}
	return m.bootstrap(ctx, r, p, s)
}

// power moves a shed through during to after with call. The row it
// returns carries the reason when it failed.
func (m *Manager) power(ctx context.Context, name, during, after string, call func(Provider, context.Context, string) error) (state.Shed, error) {
	r := run{m: m, name: name, start: time.Now()}
	s, p, err := m.load(ctx, name)
	if err != nil {
		return s, err
	}
	if !p.Capabilities().StartStop {
		return s, refused{fmt.Errorf("provisioning: %s sheds cannot be stopped and started (a stopped cloud VM still bills); `spuff down %s` ends it", s.Provider, name)}
	}
	if err := canPower(s, during); err != nil {
		return s, err
	}
	s.State, s.Reason = during, ""
	if err := m.o.DB.UpdateShed(ctx, s); err != nil {
		return s, err
	}
	r.step(during, s.State)
	if err := call(p, ctx, s.ProviderID); err != nil {
		return m.fail(ctx, r, s, during, err)
	}
	s.State = after
	if err := m.o.DB.UpdateShed(ctx, s); err != nil {
		return s, err
	}
	r.step(after, s.State)
	return s, nil
}

// End is the idle hook: it stops a shed whose provider can keep it
// stopped (local) and destroys any other (a stopped cloud VM still bills).
func (m *Manager) End(ctx context.Context, name string) error {
	_, p, err := m.load(ctx, name)
	if err != nil {
		return err
	}
	if p.Capabilities().StartStop {
		return m.Stop(ctx, name)
	}
	return m.Down(ctx, name, false)
}

// Listed is one line of `spuff list`: a row, a machine, or both.
type Listed struct {
	state.Shed
	// Machine is what the provider reports; nil when it has no machine.
	Machine *Machine `json:"machine,omitempty"`
	// Orphan says what is missing: "no machine" (a row the provider does
	// not know) or "no row" (a machine labelled for spuff that state.db
	// does not know).
	Orphan string `json:"orphan,omitempty"`
}

// List reconciles state.db with each provider's labelled machines. A row
// whose machine the provider no longer has, or reports failed, is marked
// failed; a row whose machine is powered off is marked stopped. Providers that cannot be
// asked are named in notes, not fatal; one that lacks credentials only
// when a shed of it exists.
func (m *Manager) List(ctx context.Context) (out []Listed, notes []string, err error) {
	rows, err := m.o.DB.Sheds(ctx)
	if err != nil {
		return nil, nil, err
	}
	byProvider := map[string][]Machine{}
	unasked := map[string]bool{} // providers that could not be listed
	names := Names()
	used := map[string]bool{}
	for _, s := range rows {
		used[s.Provider] = true
		if !slices.Contains(names, s.Provider) {
			names = append(names, s.Provider)
		}
	}
	// Every provider is asked at once: a cloud's listing is a child
	// process and an API round trip, so `spuff list` waits for the slowest
	// alone, not for the sum.
	listed := make([]struct {
		ms  []Machine
		err error
	}, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			p, err := m.o.Provider(name)
			if err == nil {
				listed[i].ms, err = p.List(ctx)
			}
			listed[i].err = err
		})
	}
	wg.Wait()
	for i, name := range names {
		byProvider[name] = listed[i].ms
		if err := listed[i].err; err != nil {
			unasked[name] = true
			// A provider with no token and no shed is one the developer
			// does not use: saying so at every list is noise.
			if used[name] || !errors.Is(err, ErrNoCredentials) {
				notes = append(notes, fmt.Sprintf("%s: %v", name, err))
			}
		}
	}
	seen := map[string]bool{}
	for _, s := range rows {
		l := Listed{Shed: s}
		// The action under way on a row owns it: a list only reports it.
		owned := m.underWay(s.Name)
		if unasked[s.Provider] {
			out = append(out, l)
			continue
		}
		for i, mc := range byProvider[s.Provider] {
			// A row without an id (a crash right after Create) adopts the
			// machine labelled with its name.
			adopt := s.ProviderID == "" && mc.Labels[Label] == s.Name && m.ours(mc)
			if (mc.ID == s.ProviderID && s.ProviderID != "") || adopt {
				l.Machine = &byProvider[s.Provider][i]
				seen[s.Provider+"\x00"+mc.ID] = true
				if adopt {
					l.ProviderID = mc.ID
					if owned {
						break
					}
					if err := m.o.DB.UpdateShed(ctx, l.Shed); err != nil {
						notes = append(notes, err.Error())
					}
					break
				}
			}
		}
		busy := s.State == state.Creating || s.State == state.Destroying
		switch {
		case owned:
		case l.Machine == nil && !busy:
			l.Orphan = "no machine"
			if s.State != state.Failed {
				l.State, l.Reason = state.Failed, "the machine is gone: "+s.Provider+" no longer has it; `spuff down "+s.Name+"` forgets it"
				_ = m.o.DB.UpdateShed(ctx, l.Shed)
			}
		case l.Machine != nil && l.Machine.State == Stopped && s.State == state.Ready:
			l.State = state.Stopped
			_ = m.o.DB.UpdateShed(ctx, l.Shed)
		case l.Machine != nil && l.Machine.State == Failed && (s.State == state.Ready || s.State == state.Stopped):
			l.State, l.Reason = state.Failed, "the machine failed: "+l.Machine.Status
			_ = m.o.DB.UpdateShed(ctx, l.Shed)
		}
		out = append(out, l)
	}
	for prov, ms := range byProvider {
		for i, mc := range ms {
			if seen[prov+"\x00"+mc.ID] {
				continue
			}
			if !m.ours(mc) {
				continue // someone else's shed in a shared account
			}
			out = append(out, Listed{Shed: state.Shed{Name: mc.Name, Provider: prov, ProviderID: mc.ID, State: string(mc.State), SSHAddr: mc.SSHAddr, Created: mc.Created},
				Machine: &ms[i], Orphan: "no row"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, notes, nil
}

func newHostKey() (*HostKey, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("provisioning: making a host key: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, fmt.Errorf("provisioning: making a host key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("provisioning: making a host key: %w", err)
	}
	return &HostKey{PrivatePEM: pem.EncodeToMemory(blk), Public: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))}, sp, nil
}

// load reads a shed's row and builds its provider.
func (m *Manager) load(ctx context.Context, name string) (state.Shed, Provider, error) {
	s, err := m.row(ctx, name)
	if err != nil {
		return s, nil, err
	}
	p, err := m.o.Provider(s.Provider)
	return s, p, err
}

// row reads a shed's row; a name with none is told as the developer meets
// it, a mistyped name or a shed already gone.
func (m *Manager) row(ctx context.Context, name string) (state.Shed, error) {
	s, err := m.o.DB.GetShed(ctx, name)
	if errors.Is(err, state.ErrNotFound) {
		return s, noShed{name: name, err: err}
	}
	return s, err
}

// noShed is a lifecycle action on a name spuff made no shed of.
type noShed struct {
	name string
	err  error // state.ErrNotFound, wrapped
}

func (e noShed) Error() string {
	return fmt.Sprintf("provisioning: spuff made no shed %q; `spuff list` shows the sheds there are", e.name)
}

func (e noShed) Unwrap() error { return e.err }

// BusURL is the ssh:// URL a made shed's bus is attached on: its login
// user at its sshd; the host dials it with the bus key.
func BusURL(user, addr string) string { return "ssh://" + user + "@" + addr }
