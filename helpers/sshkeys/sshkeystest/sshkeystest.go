// Package sshkeystest holds the peers ssh-agent tests run against: a real
// OpenSSH ssh-agent with keys made by ssh-keygen, and a small stand-in for
// the broker that runs a Service the way the broker does (Describe, then
// Serve) over a real bus.Conn pair and records what it would audit.
package sshkeystest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
	"github.com/spuff-dev/spuff/test/testenv"
)

// Key is a key pair made by ssh-keygen.
type Key struct {
	Path string // private key file
	Line string // authorized_keys line
	Pub  ssh.PublicKey
	FP   string // SHA256:…
}

// NewKey runs ssh-keygen for an unencrypted key of typ ("ed25519", "rsa",
// "ecdsa") at dir/name.
func NewKey(t testing.TB, dir, name, typ string) Key {
	t.Helper()
	p, line := testenv.KeyPair(t, dir, name, typ)
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return Key{Path: p, Line: line, Pub: pub, FP: ssh.FingerprintSHA256(pub)}
}

// ShortDir is a temporary directory short enough for socket paths.
func ShortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Agent is a running OpenSSH ssh-agent.
type Agent struct {
	Sock string
	proc *testenv.Process
}

// StartAgent runs `ssh-agent -D -a SOCK` and ssh-adds the given private key
// files. It is killed at the end of the test.
func StartAgent(t testing.TB, keys ...string) *Agent {
	t.Helper()
	return StartAgentAt(t, filepath.Join(ShortDir(t), "agent.sock"), keys...)
}

// StartAgentAt is StartAgent on a given socket path.
func StartAgentAt(t testing.TB, sock string, keys ...string) *Agent {
	t.Helper()
	bin := testenv.Tool(t, "ssh-agent")
	p := testenv.MustStartProcess(t, "ssh-agent", exec.Command(bin, "-D", "-a", sock))
	a := &Agent{Sock: sock, proc: p}
	if err := p.WaitReady(5*time.Second, testenv.Dialable("unix", sock)); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		a.Add(t, k)
	}
	return a
}

// Stop ends the agent (it removes its socket).
func (a *Agent) Stop() { a.proc.Stop() }

// Add ssh-adds a private key file.
func (a *Agent) Add(t testing.TB, key string) {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "ssh-add"), "-q", key)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+a.Sock)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add %s: %v: %s", filepath.Base(key), err, b)
	}
}

// Record is what the broker would audit for one request.
type Record struct {
	Shed, NS, Op string
	Result       string // ok | denied | error
	Code         string // wire code of a failure
	Action       helper.Action
}

// Broker runs one Service as the broker does, minus approval and limits.
type Broker struct {
	Svc    helper.Service
	Config *config.Config

	mu      sync.Mutex
	records []Record
}

// Handler serves the requests of one shed, as a session the host dialed.
func (b *Broker) Handler(shed string) bus.Handler {
	return bus.HandlerFunc(func(ctx context.Context, req *bus.Request) (any, error) {
		cfg := b.Config.ForShed(shed)
		r := &helper.Request{ID: req.ID, Shed: shed, NS: req.NS, Op: req.Op, Payload: req.Payload, Config: &cfg}
		rec := Record{Shed: shed, NS: req.NS, Op: req.Op}
		out, err := b.run(ctx, r, &rec)
		switch code := bus.CodeOf(err); code {
		case "":
			rec.Result = "ok"
		case bus.CodeNotAllowed, bus.CodeDenied, bus.CodeKeyNotFound:
			rec.Result, rec.Code = "denied", code
		default:
			rec.Result, rec.Code = "error", code
		}
		b.mu.Lock()
		b.records = append(b.records, rec)
		b.mu.Unlock()
		return out, err
	})
}

func (b *Broker) run(ctx context.Context, r *helper.Request, rec *Record) (any, error) {
	if r.NS != bus.NSSSHAgent {
		return nil, bus.Errorf(bus.CodeBadRequest, "namespace %q is not served here", r.NS)
	}
	a, err := b.Svc.Describe(ctx, r)
	if err != nil {
		return nil, err
	}
	out, err := b.Svc.Serve(ctx, r, a)
	rec.Action = *a
	return out, err
}

// Records returns what was audited so far.
func (b *Broker) Records() []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Record(nil), b.records...)
}

// Pipe connects a guest-side bus.Conn to h over an in-memory pipe, as the
// host's session with one shed. Both ends close at the end of the test.
func Pipe(t testing.TB, h bus.Handler, opts bus.Options) *bus.Conn {
	t.Helper()
	hc, gc := net.Pipe()
	host := bus.NewConn(hc, h, bus.Options{})
	guest := bus.NewConn(gc, nil, opts)
	t.Cleanup(func() {
		guest.Close()
		host.Close()
	})
	return guest
}
