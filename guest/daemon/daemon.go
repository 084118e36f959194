// Package daemon is the shed side of spuff: it accepts the host's bus
// connection and serves the shed's credential faces (the ssh-agent socket,
// the AWS endpoint, guest.sock for one-shot tools), all of which forward to
// the host over that one connection.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// Options configure the daemon.
type Options struct {
	RunDir    string // default /run/spuff
	BusListen string // unix:PATH | vsock:PORT; default unix:RUNDIR/bus.sock
	// SocketGID, when >= 0, makes the shed's sockets and token 0660/0640 with
	// this group (for containers); otherwise they are 0600 for the owner only.
	SocketGID   int
	Version     string
	Log         *slog.Logger
	CallTimeout time.Duration // per request with no progress (3s)
	MaxWait     time.Duration // with progress (60s)
	// Frontends are the namespaces' faces in the shed.
	Frontends []Frontend
	// Logins reports the newest login-session activity for the idle clock;
	// nil watches the terminals under Terminals and commands run over ssh.
	Logins func() time.Time
	// Terminals is the directory of login-session terminals (/dev/pts):
	// the idle clock watches them and agent/notice writes to them.
	Terminals string
}

// Frontend is one namespace's face inside the shed (the ssh-agent socket,
// the AWS endpoint, docker-credential-spuff's guest.sock). Each namespace the
// guest serves is exactly its frontends: hello and the status files list
// them. A frontend serves until ctx ends, reaching the host through c.
type Frontend interface {
	Namespace() string
	// Where says where it listens, for the NS.status file.
	Where() string
	Serve(ctx context.Context, c Caller) error
}

// Attacher is a Frontend that learns something from the host each time the
// host attaches (after the guest answered its hello), such as the docker
// registries the host allows this shed. It runs on its own goroutine.
type Attacher interface {
	HostAttached(ctx context.Context, c Caller)
}

// Caller is how faces reach the host.
type Caller interface {
	Call(ctx context.Context, ns, op string, payload, out any) error
}

// Daemon is a running guest.
type Daemon struct {
	opts  Options
	log   *slog.Logger
	start time.Time

	mu       sync.Mutex
	host     *bus.Conn
	hostSeen time.Time
	runCtx   context.Context // Run's, for Attachers

	idle     *IdleClock
	requests atomic.Int64
	failures atomic.Int64
}

// New prepares a daemon; Run starts it.
func New(opts Options) *Daemon {
	if opts.RunDir == "" {
		opts.RunDir = "/run/spuff"
	}
	if opts.BusListen == "" {
		opts.BusListen = "unix:" + filepath.Join(opts.RunDir, "bus.sock")
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 3 * time.Second
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = bus.DefaultMaxWait
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Terminals == "" {
		opts.Terminals = "/dev/pts"
	}
	if opts.Logins == nil {
		opts.Logins = func() time.Time { return sessionActivity("/proc", opts.Terminals) }
	}
	now := time.Now()
	return &Daemon{opts: opts, log: opts.Log, start: now, idle: NewIdleClock(now, opts.Logins)}
}

// GuestSock is the path of the local socket one-shot tools use.
func (d *Daemon) GuestSock() string { return GuestSockIn(d.opts.RunDir) }

// GuestSockIn is the path of guest.sock in run directory runDir: one-shot
// tools (docker-credential-spuff) reach the host through it.
func GuestSockIn(runDir string) string { return filepath.Join(runDir, "guest.sock") }

// SocketMode is the mode of the shed's sockets.
func (d *Daemon) SocketMode() os.FileMode {
	if d.opts.SocketGID >= 0 {
		return 0o660
	}
	return 0o600
}

// Run serves until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	if err := os.MkdirAll(d.opts.RunDir, 0o755); err != nil {
		return fmt.Errorf("daemon: creating run dir: %w", err)
	}
	busL, err := bus.Listen(d.opts.BusListen)
	if err != nil {
		return err
	}
	guestL, err := bus.ListenUnix(d.GuestSock(), d.SocketMode(), d.opts.SocketGID)
	if err != nil {
		busL.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	d.runCtx = ctx
	d.mu.Unlock()
	errc := make(chan error, 2+len(d.opts.Frontends))
	go func() { errc <- d.acceptHost(ctx, busL) }()
	go func() { errc <- d.acceptLocal(ctx, guestL) }()
	for _, f := range d.opts.Frontends {
		go func() {
			if err := f.Serve(ctx, d); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("daemon: %s: %w", f.Namespace(), err)
				return
			}
			errc <- nil
		}()
	}
	d.writeStatus()
	d.log.Info("spuff-guest serving", "run_dir", d.opts.RunDir, "bus", d.opts.BusListen)
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	busL.Close()
	guestL.Close()
	d.mu.Lock()
	if d.host != nil {
		d.host.Close()
	}
	d.mu.Unlock()
	return first
}

func (d *Daemon) acceptHost(ctx context.Context, l net.Listener) error {
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("daemon: accepting the host: %w", err)
		}
		c := bus.NewConn(nc, bus.HandlerFunc(d.serveHost), bus.Options{
			CallTimeout: d.opts.CallTimeout, MaxWait: d.opts.MaxWait, KeepAlive: 15 * time.Second, Logger: d.log,
		})
		d.mu.Lock()
		d.host, d.hostSeen = c, time.Now()
		d.mu.Unlock()
		d.log.Info("host connected")
		d.writeStatus()
		go func() {
			<-c.Done()
			d.mu.Lock()
			if d.host == c {
				d.host = nil
			}
			d.mu.Unlock()
			d.log.Warn("host connection closed", "err", c.Err())
			d.writeStatus()
		}()
	}
}

// serveHost answers the host's agent requests.
func (d *Daemon) serveHost(ctx context.Context, r *bus.Request) (any, error) {
	if r.NS != bus.NSAgent {
		return nil, bus.Errorf(bus.CodeBadRequest, "the guest serves only the agent namespace")
	}
	switch r.Op {
	case bus.OpHello:
		var h bus.HelloRequest
		if err := json.Unmarshal(r.Payload, &h); err != nil || h.Version != bus.Version {
			return nil, bus.Errorf(bus.CodeBadRequest, "protocol version %d not supported (guest speaks %d); update spuff-guest", h.Version, bus.Version)
		}
		d.attached()
		return bus.HelloResponse{Version: bus.Version, GuestVersion: d.opts.Version, Namespaces: d.namespaces()}, nil
	case bus.OpPing:
		return bus.PingResponse{Time: time.Now().UTC()}, nil
	case bus.OpStatus:
		return d.Status(), nil
	case bus.OpMetrics:
		return d.MetricsJSON(), nil
	case bus.OpIdle:
		return d.idle.Idle(time.Now()), nil
	case bus.OpNotice:
		var n bus.NoticeRequest
		if err := bus.DecodePayload(bus.NSAgent, r.Payload, &n); err != nil {
			return nil, err
		}
		if len(n.Text) > bus.MaxNoticeText {
			return nil, bus.Errorf(bus.CodeBadRequest, "a notice is at most %d bytes", bus.MaxNoticeText)
		}
		text := noticeText(n.Text)
		shown := tellTerminals(d.opts.Terminals, text)
		d.log.Info("host notice", "text", text, "terminals", shown)
		return bus.NoticeResponse{Terminals: shown}, nil
	}
	return nil, bus.Errorf(bus.CodeBadRequest, "unknown agent operation %.40q", r.Op)
}

// attached starts every Attacher, a moment after the hello answer has left.
func (d *Daemon) attached() {
	d.mu.Lock()
	ctx := d.runCtx
	d.mu.Unlock()
	if ctx == nil {
		return
	}
	for _, f := range d.opts.Frontends {
		if a, ok := f.(Attacher); ok {
			go a.HostAttached(ctx, d)
		}
	}
}

func (d *Daemon) namespaces() []string {
	out := make([]string, 0, len(d.opts.Frontends))
	for _, f := range d.opts.Frontends {
		out = append(out, f.Namespace())
	}
	return out
}

// Status is what the guest reports of itself.
type Status struct {
	Version       string    `json:"version"`
	HostConnected bool      `json:"host_connected"`
	HostSince     time.Time `json:"host_since,omitzero"`
	Namespaces    []string  `json:"namespaces"`
	Uptime        string    `json:"uptime"`
}

// Metrics counts what the guest forwarded.
type Metrics struct {
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
	Uptime   string `json:"uptime"`
}

// Status reports the daemon's state.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{Version: d.opts.Version, HostConnected: d.host != nil, Namespaces: d.namespaces(), Uptime: time.Since(d.start).Round(time.Second).String()}
	if d.host != nil {
		st.HostSince = d.hostSeen.UTC()
	}
	return st
}

// Call forwards a request to the host. It fails fast with HOST_UNREACHABLE
// when the host is not connected or does not answer in time.
func (d *Daemon) Call(ctx context.Context, ns, op string, payload, out any) error {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return fmt.Errorf("daemon: encoding %s/%s: %w", ns, op, err)
		}
		raw = b
	}
	return d.forward(ctx, ns, op, raw, out, nil)
}

func (d *Daemon) forward(ctx context.Context, ns, op string, payload json.RawMessage, out any, onProgress func(string)) error {
	d.requests.Add(1)
	d.idle.Touch(time.Now())
	d.mu.Lock()
	c := d.host
	d.mu.Unlock()
	if c == nil {
		d.failures.Add(1)
		d.log.Warn("credential request failed: host not connected", "ns", ns, "op", op, "advice", bus.HostUnreachable)
		return bus.Errorf(bus.CodeHostUnreachable, "%s", bus.HostUnreachable)
	}
	req := &bus.Envelope{V: bus.Version, ID: bus.NewID(), Type: bus.TypeRequest, NS: ns, Op: op, Payload: payload}
	err := c.CallProgress(ctx, req, out, onProgress)
	if err == nil {
		return nil
	}
	d.failures.Add(1)
	var be *bus.Error
	if errors.As(err, &be) {
		return be
	}
	if ctx.Err() != nil {
		return err
	}
	d.log.Warn("credential request failed: host did not answer", "ns", ns, "op", op, "err", err, "advice", bus.HostUnreachable)
	return bus.Unreachable(err)
}

// acceptLocal serves guest.sock: one-shot tools send bus requests, which are
// relayed to the host with fresh ids; progress frames are relayed back.
func (d *Daemon) acceptLocal(ctx context.Context, l net.Listener) error {
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("daemon: accepting on guest.sock: %w", err)
		}
		c := bus.NewConn(nc, bus.HandlerFunc(d.relay), bus.Options{MaxInFlight: 16, Logger: d.log})
		go func() {
			select {
			case <-c.Done():
			case <-ctx.Done():
				c.Close()
			}
		}()
	}
}

func (d *Daemon) relay(ctx context.Context, r *bus.Request) (any, error) {
	switch {
	case bus.IsNamespace(r.NS):
	case r.NS == bus.NSAgent && r.Op == bus.OpPing:
	default:
		return nil, bus.Errorf(bus.CodeBadRequest, "namespace %.40q cannot be asked through guest.sock", r.NS)
	}
	var out json.RawMessage
	if err := d.forward(ctx, r.NS, r.Op, r.Payload, &out, func(note string) { _ = r.Progress(note) }); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// StatusFile is RUN-DIR/NS.status, one per namespace the guest serves.
type StatusFile struct {
	NS            string    `json:"ns"`
	Where         string    `json:"where,omitempty"` // the namespace's face: a socket, a URL
	HostConnected bool      `json:"host_connected"`
	HostSince     time.Time `json:"host_since,omitzero"`
	Updated       time.Time `json:"updated"`
}

// writeStatus refreshes one NS.status file per namespace, so tools and
// humans in the shed can see whether the host is there.
func (d *Daemon) writeStatus() {
	st := d.Status()
	write := func(ns, where string) {
		b, _ := json.MarshalIndent(StatusFile{ns, where, st.HostConnected, st.HostSince, time.Now().UTC()}, "", "  ")
		p := filepath.Join(d.opts.RunDir, ns+".status")
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err == nil {
			err = os.Rename(tmp, p)
			if err != nil {
				d.log.Warn("writing status file", "path", p, "err", err)
			}
		}
	}
	for _, f := range d.opts.Frontends {
		write(f.Namespace(), f.Where())
	}
}

// StatusJSON, MetricsJSON, Idle and Heartbeat feed the shed's agent API.
func (d *Daemon) StatusJSON() any { return d.Status() }

// MetricsJSON reports the forwarding counters.
func (d *Daemon) MetricsJSON() any {
	return Metrics{Requests: d.requests.Load(), Failures: d.failures.Load(), Uptime: time.Since(d.start).Round(time.Second).String()}
}

// IdleSince is when the shed was last active, by its one idle clock.
func (d *Daemon) IdleSince() time.Time { return d.idle.Since() }

// Heartbeat tells the idle clock that someone is at work in the shed.
func (d *Daemon) Heartbeat() { d.idle.Touch(time.Now()) }
