package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/app/approval"
	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// Auditor writes one audit record durably. An error means the record is not
// on disk, and the broker then denies the request.
type Auditor interface {
	Write(ctx context.Context, r audit.Record) error
}

// DialFunc opens a bus stream to a shed address (unix://, ssh://, vsock://).
type DialFunc func(ctx context.Context, url string) (io.ReadWriteCloser, error)

// Options configure a Broker. Config, Audit and Dial are required.
type Options struct {
	Config   *config.Config
	Audit    Auditor
	Dial     DialFunc
	Services map[string]helper.Service // by namespace
	Approver Approver                  // nil: no request needs approval
	Log      *slog.Logger
	Now      func() time.Time

	// Skew is how far a request id's time may be from the host clock (2m).
	Skew time.Duration
	// MaxReplayIDs bounds the replay guard's memory of each shed (100k ids).
	MaxReplayIDs int
	// FencePath keeps each shed's mark past the future-dated ids the
	// broker accepted, so that a restarted broker refuses them too; empty
	// keeps none (the fence is then the start time alone).
	FencePath string
	// Bus tunes each shed connection; KeepAlive defaults to 15s.
	Bus bus.Options
	// Backoff bounds reconnect delays (250ms … 10s).
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one connection attempt, hello included (15s, as
	// an ssh ConnectTimeout would).
	DialTimeout time.Duration
}

// Broker holds the attachments of attached sheds and the request pipeline.
type Broker struct {
	opts   Options
	log    *slog.Logger
	replay *replayGuard
	fence  *fenceFile // nil without Options.FencePath

	mu          sync.Mutex
	cfg         *config.Config
	attachments map[string]*attachment
	subs        map[chan api.Event]struct{}
	closed      bool
}

// New builds a broker. Call Close to detach every shed.
func New(opts Options) (*Broker, error) {
	if opts.Config == nil || opts.Audit == nil || opts.Dial == nil {
		return nil, errors.New("broker: Config, Audit and Dial are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Skew <= 0 {
		opts.Skew = 2 * time.Minute
	}
	if opts.MaxReplayIDs <= 0 {
		opts.MaxReplayIDs = 100_000
	}
	if opts.Bus.KeepAlive == 0 {
		opts.Bus.KeepAlive = 15 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 15 * time.Second
	}
	started := opts.Now()
	b := &Broker{
		opts: opts, log: opts.Log, cfg: opts.Config,
		replay:      newReplayGuard(opts.Skew, opts.MaxReplayIDs, started),
		attachments: map[string]*attachment{},
		subs:        map[chan api.Event]struct{}{},
	}
	if opts.FencePath != "" {
		ff, fences, err := openFence(opts.FencePath, started, opts.Log)
		if err != nil {
			return nil, err
		}
		b.fence, b.replay.fences = ff, fences
	}
	return b, nil
}

// Attach starts an attachment that dials url and keeps it connected.
func (b *Broker) Attach(name, url string) error {
	if !config.ValidShedName(name) {
		return fmt.Errorf("broker: %q is not a shed name: use %s", name, config.ShedNameRule)
	}
	if _, err := bus.ParseTarget(url); err != nil {
		return fmt.Errorf("broker: attaching %q: %w", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("broker: closed")
	}
	if s, ok := b.attachments[name]; ok {
		return fmt.Errorf("broker: shed %q is already attached to %s; detach it first", name, s.url)
	}
	shed := b.cfg.ForShed(name)
	s := newAttachment(b, name, url, &shed)
	b.attachments[name] = s
	go s.run()
	b.log.Info("shed attached", "shed", name, "url", url)
	return nil
}

// Detach stops an attachment and drops the services' state for that shed.
func (b *Broker) Detach(name string) error {
	b.mu.Lock()
	s, ok := b.attachments[name]
	delete(b.attachments, name)
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("broker: no shed named %q is attached", name)
	}
	s.stop()
	for _, svc := range b.opts.Services {
		if f, ok := svc.(helper.Forgetter); ok {
			f.Forget(name)
		}
	}
	b.log.Info("shed detached", "shed", name)
	b.publish(api.Event{Kind: api.EventShed, Shed: name, State: api.StateDetached})
	return nil
}

// Sheds lists attached sheds, sorted by name.
func (b *Broker) Sheds() []api.Attachment {
	b.mu.Lock()
	list := make([]*attachment, 0, len(b.attachments))
	for _, s := range b.attachments {
		list = append(list, s)
	}
	b.mu.Unlock()
	out := make([]api.Attachment, 0, len(list))
	for _, s := range list {
		out = append(out, s.status())
	}
	slices.SortFunc(out, func(a, b api.Attachment) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// CallGuest sends a host→guest agent request (status, metrics, idle,
// notice) to shed name; payload may be nil.
func (b *Broker) CallGuest(ctx context.Context, name, op string, payload, out any) error {
	b.mu.Lock()
	s, ok := b.attachments[name]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("broker: no shed named %q is attached", name)
	}
	c := s.current()
	if c == nil {
		return fmt.Errorf("broker: shed %q is not connected", name)
	}
	return c.Call(ctx, bus.NSAgent, op, payload, out)
}

// Subscribe returns a channel of attachment and request events
// (api.EventShed, api.EventRequest) and a function that ends the
// subscription. A slow subscriber misses events rather than slowing requests.
func (b *Broker) Subscribe() (<-chan api.Event, func()) {
	ch := make(chan api.Event, 64)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
		b.mu.Unlock()
	}
}

func (b *Broker) publish(e api.Event) {
	if e.Time.IsZero() {
		e.Time = b.opts.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// FenceState reports the replay fence's health; it is zero without
// Options.FencePath.
func (b *Broker) FenceState() FenceState {
	if b.fence == nil {
		return FenceState{}
	}
	return b.fence.state()
}

// Close detaches every shed and closes the replay fence.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.closed = true
	list := b.attachments
	b.attachments = map[string]*attachment{}
	b.mu.Unlock()
	for _, s := range list {
		s.stop()
	}
	if b.fence != nil {
		return b.fence.close()
	}
	return nil
}

// handle is the pipeline for one guest request on shed's attachment.
func (b *Broker) handle(ctx context.Context, s *attachment, r *bus.Request) (any, error) {
	// A host agent that asks its user (1Password, Secretive) or a slow STS
	// can take longer than the guest's 3s; progress keeps the guest waiting,
	// up to its own cap. A timer, not a goroutine, so a fast request costs
	// nothing here.
	p := startProgress(r)
	rec := b.record(s, r)
	payload, err := b.pipeline(ctx, s, r, &rec)
	p.stop()
	return payload, b.finish(s, r, &rec, err)
}

// record starts the audit record of r. A shed chooses ns and op, so only
// names the broker knows are copied as they are; anything else is cut and
// quoted, so that the line fits and no terminal showing it is disturbed.
func (b *Broker) record(s *attachment, r *bus.Request) audit.Record {
	return audit.Record{Shed: s.name, NS: printable(r.NS), Op: printable(r.Op), ID: printable(r.ID), Approval: approval.MethodNone}
}

// finish writes the line of r with err's outcome, and returns the error to
// answer with: err, or a denial when the line could not be written. A
// refusal over the shed's rate may wait a moment to share a counted line
// with others like it (floods).
func (b *Broker) finish(s *attachment, r *bus.Request, rec *audit.Record, err error) error {
	rec.TS = b.opts.Now().UTC()
	rec.Result = resultOf(err)
	rec.Code = bus.CodeOf(err)
	var aerr error
	if rec.Code == bus.CodeRateLimited {
		aerr = s.floods.audit(*rec, r.ID)
	} else {
		aerr = b.opts.Audit.Write(context.Background(), *rec)
	}
	if aerr != nil {
		b.log.Error("audit write failed; denying request", "shed", s.name, "ns", rec.NS, "op", rec.Op, "err", aerr)
		err = errAuditFailed
	}
	s.count(rec.Result)
	b.publish(api.Event{Kind: api.EventRequest, Shed: s.name, NS: rec.NS, Op: rec.Op, Result: rec.Result})
	return err
}

var errFenceFailed = bus.Errorf(bus.CodeDenied, "the host could not record this request's time, so it refuses requests dated ahead of its clock; check the disk on your computer, or the shed's clock")

var errAuditFailed = bus.Errorf(bus.CodeDenied, "the host could not write its audit log, so it refuses every request; check the disk on your computer")

// refused audits a request the bus answered itself (too many in flight on
// the connection), so that every answer has its line.
func (b *Broker) refused(s *attachment, r *bus.Request, be *bus.Error) *bus.Error {
	rec := b.record(s, r)
	rec.Detail = "refused by the bus"
	if err := b.finish(s, r, &rec, be); err != be {
		return errAuditFailed
	}
	return be
}

func (b *Broker) pipeline(ctx context.Context, s *attachment, r *bus.Request, rec *audit.Record) (any, error) {
	// The rate limit runs first: every request a shed sends costs it, bad
	// or not, so what a flood past it costs the broker is a refusal that
	// shares its audit line with others (floods) and nothing in the replay
	// memory.
	if !s.limiter.Allow() {
		rec.Detail = "rate limit"
		return nil, bus.Errorf(bus.CodeRateLimited, "shed %q is over its request rate", s.name)
	}
	if err := checkNames(r); err != nil {
		return nil, err
	}
	now := b.opts.Now()
	id, ts, err := b.replay.parse(s.name, r.ID, now)
	if err != nil {
		rec.Detail = "replay guard"
		return nil, err
	}
	if err := b.admit(s, r); err != nil {
		return nil, err
	}
	if err := b.replay.remember(s.name, id, now); err != nil {
		rec.Detail = "replay guard"
		return nil, err
	}
	if b.fence != nil && ts.After(now) {
		if err := b.fence.raise(s.name, ts); err != nil {
			rec.Detail = "replay guard"
			return nil, errFenceFailed
		}
	}
	if r.NS == bus.NSAgent {
		rec.Detail = "pong"
		return bus.PingResponse{Time: b.opts.Now().UTC()}, nil
	}
	svc := b.opts.Services[r.NS]
	req := &helper.Request{ID: r.ID, Shed: s.name, NS: r.NS, Op: r.Op, Payload: json.RawMessage(r.Payload), Config: s.cfg}
	act, err := svc.Describe(ctx, req)
	if err != nil {
		return nil, err
	}
	rec.Detail = act.Detail
	if b.opts.Approver != nil && act.Class != "" {
		method, err := b.opts.Approver.Approve(ctx, &approval.Request{
			ID: r.ID, Shed: s.name, NS: r.NS, Op: r.Op,
			Class: act.Class, Scope: act.Scope, Subject: act.Subject, Prompt: act.Prompt,
			Policy: s.cfg.Approval,
		})
		if method != "" {
			rec.Approval = method
		}
		if err != nil {
			return nil, err
		}
	}
	out, err := svc.Serve(ctx, req, act)
	rec.Detail = act.Detail
	return out, err
}

// admit checks that the shed may use this namespace at all.
func (b *Broker) admit(s *attachment, r *bus.Request) error {
	_, served := b.opts.Services[r.NS]
	switch {
	case r.NS == bus.NSAgent:
		if r.Op != bus.OpPing {
			return bus.Errorf(bus.CodeBadRequest, "the host serves only agent/ping; %s is a host→guest operation", r.Op)
		}
	case !served && !bus.IsNamespace(r.NS):
		return bus.Errorf(bus.CodeBadRequest, "unknown namespace %s", r.NS)
	case !s.cfg.Allows(r.NS):
		return bus.Errorf(bus.CodeNotAllowed, "namespace %s is not enabled for shed %q (sheds.%s.namespaces in the host config)", r.NS, s.name, s.name)
	case !served:
		return bus.Errorf(bus.CodeNotAllowed, "namespace %s is not served by this host", r.NS)
	}
	return nil
}

// resultOf maps an outcome to the audit result.
func resultOf(err error) string {
	switch bus.CodeOf(err) {
	case "":
		return "ok"
	case bus.CodeDenied, bus.CodeNotAllowed, bus.CodeReplayed, bus.CodeRateLimited, bus.CodeApprovalTimeout, bus.CodeBadRequest:
		return "denied"
	default:
		return "error"
	}
}
