package bus

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// DialConfig holds what the ssh transport needs; unix and vsock need nothing.
type DialConfig struct {
	// SSHAuth are the methods tried for ssh:// (the host's agent, its keys).
	SSHAuth []ssh.AuthMethod
	// HostKeyCallback checks the shed's host key for ssh://. Required for ssh://.
	HostKeyCallback ssh.HostKeyCallback
	// Command is run on the shed for ssh:// (default "spuff-guest bus-stdio";
	// an authorized_keys forced command overrides it anyway).
	Command string
	// Timeout bounds connection set-up (10s).
	Timeout time.Duration
}

// Target is a parsed shed address.
type Target struct {
	Scheme string // unix | ssh | vsock
	Path   string // unix
	User   string // ssh
	Addr   string // ssh host:port
	CID    uint32 // vsock
	Port   uint32 // vsock
}

// ParseTarget parses unix:///PATH, ssh://USER@HOST[:PORT] or vsock://CID:PORT.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("bus: parsing shed address %q: %w", raw, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if u.Host != "" { // unix://relative/path is a mistake worth naming
			return Target{}, fmt.Errorf("bus: unix address %q must be unix:///absolute/path", raw)
		}
		if !filepath.IsAbs(p) {
			return Target{}, fmt.Errorf("bus: unix address %q needs an absolute path", raw)
		}
		return Target{Scheme: "unix", Path: p}, nil
	case "ssh":
		if u.User == nil || u.User.Username() == "" {
			return Target{}, fmt.Errorf("bus: ssh address %q needs a user (ssh://user@host:port)", raw)
		}
		if _, set := u.User.Password(); set {
			return Target{}, fmt.Errorf("bus: ssh address must not carry a password; use keys")
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "22")
		}
		if u.Hostname() == "" {
			return Target{}, fmt.Errorf("bus: ssh address %q has no host", raw)
		}
		return Target{Scheme: "ssh", User: u.User.Username(), Addr: host}, nil
	case "vsock":
		cid, err1 := strconv.ParseUint(u.Hostname(), 10, 32)
		port, err2 := strconv.ParseUint(u.Port(), 10, 32)
		if err1 != nil || err2 != nil {
			return Target{}, fmt.Errorf("bus: vsock address %q must be vsock://CID:PORT with numbers", raw)
		}
		return Target{Scheme: "vsock", CID: uint32(cid), Port: uint32(port)}, nil
	default:
		return Target{}, fmt.Errorf("bus: shed address %q: scheme must be unix, ssh or vsock", raw)
	}
}

// String gives the canonical address.
func (t Target) String() string {
	switch t.Scheme {
	case "unix":
		return "unix://" + t.Path
	case "ssh":
		return "ssh://" + t.User + "@" + t.Addr
	case "vsock":
		return fmt.Sprintf("vsock://%d:%d", t.CID, t.Port)
	}
	return ""
}

// Dial connects to a shed's bus endpoint.
func Dial(ctx context.Context, raw string, cfg *DialConfig) (io.ReadWriteCloser, error) {
	t, err := ParseTarget(raw)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &DialConfig{}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch t.Scheme {
	case "unix":
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", t.Path)
		if err != nil {
			return nil, fmt.Errorf("bus: dialing %s: %w", t, err)
		}
		return c, nil
	case "ssh":
		return dialSSH(ctx, t, cfg)
	default:
		return dialVsock(ctx, t)
	}
}

// Listen opens the guest's bus listener: "unix:PATH" or "vsock:PORT". A vsock
// listener accepts only the host (CID 2).
func Listen(spec string) (net.Listener, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("bus: listen address %q must be unix:PATH or vsock:PORT", spec)
	}
	switch kind {
	case "unix":
		return ListenUnix(arg, 0o600, -1)
	case "vsock":
		port, err := strconv.ParseUint(arg, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bus: vsock port %q: %w", arg, err)
		}
		return listenVsock(uint32(port))
	}
	return nil, fmt.Errorf("bus: listen address %q must be unix:PATH or vsock:PORT", spec)
}
