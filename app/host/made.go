package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/bootstrap"
	"github.com/spuff-dev/spuff/provisioning/buskey"
	"github.com/spuff-dev/spuff/provisioning/cloudinit"
	"github.com/spuff-dev/spuff/provisioning/sshconn"
	"github.com/spuff-dev/spuff/provisioning/state"
)

// made is the control API's Provisioner: the Manager, which alone holds
// provider tokens, plus attaching a ready shed's bus and the fan-out of
// provisioning steps onto /v1/events.
type made struct {
	m       *provisioning.Manager
	db      *state.DB
	cfg     *config.Config
	sheds   control.Broker
	busKey  buskey.Key
	known   string
	log     *slog.Logger
	mu      sync.Mutex
	subs    map[chan api.Event]struct{}
	provMu  sync.Mutex
	provs   map[string]provisioning.Provider
	provEnv provisioning.Env
	idle    *provisioning.Idler // nil until Run starts it
	// noCreds holds each provider whose token is missing: spuff-app's
	// environment does not change, so neither does that answer, and a
	// cloud provider's costs a spuff-cloud run to learn.
	noCreds map[string]error
}

var (
	_ control.Provisioner = (*made)(nil)
	_ control.Subscriber  = (*made)(nil)
)

// provisionAudit writes the Manager's lines into the audit log.
type provisionAudit struct{ w *audit.Writer }

func (a provisionAudit) Audit(ctx context.Context, l provisioning.AuditLine) error {
	return a.w.Write(ctx, audit.Record{Shed: l.Shed, NS: provisioning.AuditNS, Op: l.Op, Result: l.Result, Detail: l.Detail})
}

func newMade(cfg *config.Config, db *state.DB, identity sshconn.Identity, key buskey.Key, sheds control.Broker, aw *audit.Writer, log *slog.Logger) (*made, error) {
	cache, _ := os.UserCacheDir()
	md := &made{db: db, cfg: cfg, sheds: sheds, busKey: key, known: filepath.Join(config.Home(), "known_hosts"), log: log,
		subs: map[chan api.Event]struct{}{}, provs: map[string]provisioning.Provider{}, noCreds: map[string]error{},
		provEnv: provisioning.Env{Config: cfg, Getenv: os.Getenv, Logger: log, Home: config.Home(), Cache: filepath.Join(cache, "spuff")}}
	boot, err := bootstrap.New(bootstrap.Options{Auth: sshconn.Auth(identity), KnownHosts: md.known, Log: log,
		InstallEarly: len(cfg.Provision.Run) == 0})
	if err != nil {
		return nil, err
	}
	logins := func() ([]string, error) {
		ss, err := identity.Signers()
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range ss {
			out = append(out, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))))
		}
		if len(out) == 0 {
			return nil, errors.New("host: the SSH identity has no key to log in to a shed with")
		}
		return out, nil
	}
	host, _ := os.Hostname()
	md.m, err = provisioning.NewManager(provisioning.ManagerOptions{
		DB:       db,
		Provider: md.provider,
		UserData: func(_ context.Context, name, user string) ([]byte, error) {
			keys, err := logins()
			if err != nil {
				return nil, err
			}
			return cloudinit.Render(cloudinit.Params{Hostname: name, User: user, LoginKeys: keys, BusKey: key.Public(), Run: cfg.Provision.Run})
		},
		LoginKey: func() (string, error) {
			keys, err := logins()
			if err != nil {
				return "", err
			}
			return keys[0], nil
		},
		Bootstrap:  boot,
		Audit:      provisionAudit{aw},
		KnownHosts: md.known,
		Events:     md.publish,
		Owner:      owner(os.Getenv("USER"), host),
		Log:        log,
	})
	return md, err
}

// owner is the OwnerLabel value: letters, digits and dashes only.
func owner(user, host string) string {
	s := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, user+"-"+host)
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-")
}

// provider builds a provider once, on first use (a cloud token is read
// from the environment only then).
func (md *made) provider(name string) (provisioning.Provider, error) {
	md.provMu.Lock()
	defer md.provMu.Unlock()
	if p, ok := md.provs[name]; ok {
		return p, nil
	}
	if err, ok := md.noCreds[name]; ok {
		return nil, err
	}
	p, err := provisioning.New(name, md.provEnv)
	if errors.Is(err, provisioning.ErrNoCredentials) {
		md.noCreds[name] = err
	}
	if err != nil {
		return nil, err
	}
	md.provs[name] = p
	return p, nil
}

func (md *made) publish(e provisioning.Event) {
	ev := api.Event{Kind: api.EventProvision, Shed: e.Shed, Time: time.Now().UTC(), State: e.State,
		Provision: &api.ProvisionStep{Step: e.Step, Elapsed: e.Elapsed, Error: e.Error}}
	md.fanOut(ev)
}

// fanOut sends ev to every subscriber.
func (md *made) fanOut(ev api.Event) {
	md.mu.Lock()
	defer md.mu.Unlock()
	for ch := range md.subs {
		select {
		case ch <- ev:
		default: // a slow reader misses a step, never blocks the Manager
		}
	}
}

// Subscribe streams provisioning steps.
func (md *made) Subscribe() (<-chan api.Event, func()) {
	ch := make(chan api.Event, 64)
	md.mu.Lock()
	md.subs[ch] = struct{}{}
	md.mu.Unlock()
	return ch, func() {
		md.mu.Lock()
		delete(md.subs, ch)
		md.mu.Unlock()
	}
}

func madeShed(s state.Shed) api.MadeShed {
	return api.MadeShed{Name: s.Name, Provider: s.Provider, State: s.State, Reason: s.Reason, Addr: s.SSHAddr, User: s.User, Alias: s.HostKeyAlias, Created: s.Created}
}

// Up makes the shed and attaches its bus (unless NoConnect).
func (md *made) Up(ctx context.Context, req api.UpRequest) (api.MadeShed, error) {
	if !config.ValidShedName(req.Name) {
		return api.MadeShed{}, fmt.Errorf("host: %q is not a shed name: use %s", req.Name, config.ShedNameRule)
	}
	if req.Provider == "" {
		req.Provider = md.cfg.ForShed(req.Name).Provider // sheds.NAME.provider, else provision.provider
	}
	up := provisioning.UpRequest{Name: req.Name, Provider: req.Provider, User: md.cfg.Provision.User}
	if sec := req.IdleTimeoutSeconds; sec != nil {
		if *sec < 0 {
			return api.MadeShed{}, errors.New("host: an idle timeout is 0 (never) or positive")
		}
		up.IdleTimeout = new(time.Duration(*sec) * time.Second)
	}
	if old, err := md.db.GetShed(ctx, req.Name); err == nil && old.State == state.Stopped {
		if up.IdleTimeout != nil {
			// `spuff up --idle-timeout` of a stopped shed sets its own anew.
			old.IdleTimeout = up.IdleTimeout
			if err := md.db.UpdateShed(ctx, old); err != nil {
				return api.MadeShed{}, err
			}
		}
		return md.Start(ctx, req.Name) // `spuff up` of a stopped shed starts it
	}
	// The Manager's work outlives a client that gave up: the row must end
	// ready or failed, never stuck half-way.
	s, err := md.m.Up(context.WithoutCancel(ctx), up)
	if err != nil {
		return madeShed(s), err
	}
	return madeShed(s), md.attach(ctx, s, req.NoConnect)
}

func (md *made) attach(ctx context.Context, s state.Shed, noConnect bool) error {
	if noConnect {
		return nil
	}
	url := provisioning.BusURL(s.User, s.SSHAddr)
	if p, err := md.provider(s.Provider); err == nil && p.Capabilities().ServesBus {
		// No sshd: the provider says where its guest's bus is.
		mc, err := p.Get(ctx, s.ProviderID)
		if err != nil {
			return err
		}
		url = mc.BusURL
	}
	return md.sheds.Attach(s.Name, url)
}

// Down detaches the shed and destroys it.
func (md *made) Down(ctx context.Context, name string, force bool) error {
	_ = md.sheds.Detach(name) // not attached is fine
	return md.m.Down(context.WithoutCancel(ctx), name, force)
}

// Start boots a stopped shed and attaches it.
func (md *made) Start(ctx context.Context, name string) (api.MadeShed, error) {
	if err := md.m.Start(context.WithoutCancel(ctx), name); err != nil {
		return api.MadeShed{}, err
	}
	s, err := md.db.GetShed(ctx, name)
	if err != nil {
		return api.MadeShed{}, err
	}
	return madeShed(s), md.attach(ctx, s, false)
}

// Stop detaches the shed and powers it off.
func (md *made) Stop(ctx context.Context, name string) error {
	_ = md.sheds.Detach(name)
	return md.m.Stop(context.WithoutCancel(ctx), name)
}

// List lists made sheds reconciled with their providers.
func (md *made) List(ctx context.Context) (api.MadeList, error) {
	ls, notes, err := md.m.List(ctx)
	if err != nil {
		return api.MadeList{}, err
	}
	out := api.MadeList{Notes: notes, Sheds: []api.MadeShed{}}
	for _, l := range ls {
		m := md.madeShed(l.Shed)
		m.Orphan = l.Orphan
		out.Sheds = append(out.Sheds, m)
	}
	return out, nil
}

// Rows lists made sheds as state.db holds them, listing no provider's
// machines (a provider may still be built once, for its capabilities).
func (md *made) Rows(ctx context.Context) (api.MadeList, error) {
	rows, err := md.db.Sheds(ctx)
	if err != nil {
		return api.MadeList{}, err
	}
	out := api.MadeList{Sheds: []api.MadeShed{}}
	for _, s := range rows {
		out.Sheds = append(out.Sheds, md.madeShed(s))
	}
	return out, nil
}

// madeShed is a row as the API shows it, with what its provider can do
// (a provider built once, and no API call) and its idle countdown.
func (md *made) madeShed(s state.Shed) api.MadeShed {
	m := madeShed(s)
	if p, err := md.provider(s.Provider); err == nil {
		m.StartStop = p.Capabilities().StartStop
	}
	md.idleFields(&m)
	return m
}

// dial dials a shed's bus: a made shed's with the bus key (its
// authorized_keys line forces spuff-guest bus-stdio) and its host key
// checked under its alias; any other with the login identity.
func (md *made) dial(ctx context.Context, url string, other *bus.DialConfig) (io.ReadWriteCloser, error) {
	rows, err := md.db.Sheds(ctx)
	if err == nil {
		for _, s := range rows {
			if s.SSHAddr != "" && provisioning.BusURL(s.User, s.SSHAddr) == url {
				hk := sshconn.AcceptNewAlias(md.known, s.HostKeyAlias)
				if s.HostKey != "" {
					hk = sshconn.Pinned(md.known, s.HostKeyAlias)
				}
				return bus.Dial(ctx, url, &bus.DialConfig{SSHAuth: []ssh.AuthMethod{ssh.PublicKeys(md.busKey.Signer)}, HostKeyCallback: hk})
			}
		}
	}
	return bus.Dial(ctx, url, other)
}

// quitOn stops the lifecycle actions under way once ctx ends, beside the
// control server's own shutdown, whose requests they are: an action must
// not die half-way with the process, so each is given quitGrace to record
// its own end. The returned channel is closed when that is done.
func (md *made) quitOn(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		qctx, cancel := context.WithTimeout(context.Background(), quitGrace)
		defer cancel()
		if err := md.m.Quit(qctx); err != nil {
			md.log.Warn("provisioning: quitting before every action under way ended; the next start marks those failed", "err", err)
		}
	}()
	return done
}

// quitGrace is how long spuff-app's quit waits for the lifecycle actions
// it stopped: a cloud call's cleanup takes a second or two, and a service
// manager kills a process that takes much longer to stop.
const quitGrace = 4 * time.Second
