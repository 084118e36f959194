package sshagent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/sshkeys"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/testenv"
)

// rig is a shed's agent socket served against the real host Service, whose
// backend is a real OpenSSH ssh-agent holding three keys, two of them
// allowlisted for the shed.
type rig struct {
	t                 *testing.T
	ed, rsa, other    sshkeystest.Key
	hostAgent         *sshkeystest.Agent
	broker            *sshkeystest.Broker
	svc               *sshkeys.Service
	calls             *recCaller
	guest             *bus.Conn
	sock              string
	log               *testenv.Buffer
	cancel            context.CancelFunc
	done              chan error
	keyDir, hostKnown string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, log: &testenv.Buffer{}}
	r.keyDir = t.TempDir()
	r.ed = sshkeystest.NewKey(t, r.keyDir, "laptop_ed25519", "ed25519")
	r.rsa = sshkeystest.NewKey(t, r.keyDir, "laptop_rsa", "rsa")
	r.other = sshkeystest.NewKey(t, r.keyDir, "work_ed25519", "ed25519")
	r.hostAgent = sshkeystest.StartAgent(t, r.ed.Path, r.rsa.Path, r.other.Path)
	backend, err := sshkeys.NewBackend(sshkeys.ModeAgentForward, r.hostAgent.Sock, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	r.hostKnown = filepath.Join(t.TempDir(), "known_hosts")
	r.svc = sshkeys.NewService(backend, sshkeys.ServiceOptions{KnownHosts: sshkeys.NewKnownHosts(r.hostKnown)})
	t.Cleanup(func() { r.svc.Close() })
	cfg := &config.Config{
		SSH:   config.SSH{Keys: []string{"SHA256:notthisone"}},
		Sheds: map[string]config.ShedOverride{"my-shed": {SSH: &config.SSHOverride{Keys: []string{r.ed.FP, r.rsa.FP}}}},
	}
	r.broker = &sshkeystest.Broker{Svc: r.svc, Config: cfg}
	r.guest = sshkeystest.Pipe(t, r.broker.Handler("my-shed"), bus.Options{})
	r.calls = &recCaller{c: r.guest}
	r.sock = filepath.Join(sshkeystest.ShortDir(t), "ssh-agent.sock")
	r.serve(r.calls)
	return r
}

func (r *rig) serve(c Caller) {
	r.t.Helper()
	l, err := Listen(r.sock, -1)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	log := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { r.done <- Serve(ctx, l, c, log) }()
	r.t.Cleanup(r.stop)
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		r.t.Error("Serve did not return after its context ended")
	}
	r.cancel = nil
}

// run runs an OpenSSH program with SSH_AUTH_SOCK on the shed's socket.
func (r *rig) run(name string, args ...string) (string, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Tool(r.t, name), args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+r.sock)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *rig) records(op string) []sshkeystest.Record {
	var out []sshkeystest.Record
	for _, rec := range r.broker.Records() {
		if rec.Op == op {
			out = append(out, rec)
		}
	}
	return out
}

// recCaller records what crosses to the host.
type recCaller struct {
	c     Caller
	mu    sync.Mutex
	calls []recCall
}

type recCall struct {
	op       string
	payload  json.RawMessage
	response json.RawMessage
	err      error
}

func (rc *recCaller) Call(ctx context.Context, ns, op string, payload, out any) error {
	p, _ := json.Marshal(payload)
	var raw json.RawMessage
	err := rc.c.Call(ctx, ns, op, payload, &raw)
	if err == nil && out != nil && len(raw) > 0 {
		err = json.Unmarshal(raw, out)
	}
	rc.mu.Lock()
	rc.calls = append(rc.calls, recCall{op, p, raw, err})
	rc.mu.Unlock()
	return err
}

func (rc *recCaller) ops(op string) []recCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []recCall
	for _, c := range rc.calls {
		if c.op == op {
			out = append(out, c)
		}
	}
	return out
}

func TestSSHAddListsAllowlisted(t *testing.T) {
	r := newRig(t)
	out, err := r.run("ssh-add", "-l")
	if err != nil {
		t.Fatalf("ssh-add -l: %v: %s", err, out)
	}
	if !strings.Contains(out, r.ed.FP) || !strings.Contains(out, r.rsa.FP) || strings.Contains(out, r.other.FP) {
		t.Fatalf("ssh-add -l listed:\n%s\nwant exactly %s and %s", out, r.ed.FP, r.rsa.FP)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 2 {
		t.Fatalf("ssh-add -l listed %d keys", n)
	}
	recs := r.records(bus.OpList)
	if len(recs) != 1 || recs[0].Result != "ok" || recs[0].Action.Detail != "2 keys" {
		t.Fatalf("list audited as %+v", recs)
	}
}

func TestSSHAddTestSigns(t *testing.T) {
	r := newRig(t)
	for _, k := range []sshkeystest.Key{r.ed, r.rsa} {
		// ssh-add -T has the agent sign, then verifies the signature itself.
		if out, err := r.run("ssh-add", "-T", k.Path+".pub"); err != nil {
			t.Fatalf("ssh-add -T %s: %v: %s", filepath.Base(k.Path), err, out)
		}
	}
	if out, err := r.run("ssh-add", "-T", r.other.Path+".pub"); err == nil {
		t.Fatalf("ssh-add -T signed with a key outside the allowlist: %s", out)
	}
	var ok, denied int
	for _, rec := range r.records(bus.OpSign) {
		switch {
		case rec.Result == "ok" && (rec.Action.Subject == r.ed.FP || rec.Action.Subject == r.rsa.FP):
			ok++
		case rec.Result == "denied" && rec.Code == bus.CodeNotAllowed && rec.Action.Subject == r.other.FP:
			denied++
		default:
			t.Errorf("unexpected sign record %+v", rec)
		}
	}
	if ok != 2 || denied != 1 {
		t.Fatalf("%d signs ok and %d denied, want 2 and 1", ok, denied)
	}
	if !strings.Contains(r.log.String(), "is not allowed for shed") {
		t.Fatalf("the denial is not in the guest log:\n%s", r.log)
	}
}

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

func TestSSHLogin(t *testing.T) {
	r := newRig(t)
	type login struct {
		key    sshkeystest.Key
		format string
		sshd   *testenv.SSHD
	}
	logins := []*login{{key: r.ed, format: ssh.KeyAlgoED25519}, {key: r.rsa, format: ssh.KeyAlgoRSASHA512}}
	var known string
	for _, c := range logins {
		c.sshd = testenv.StartSSHD(t, c.key.Line+"\n")
		known += c.sshd.KnownHostsLine() + "\n"
	}
	// The shed's ssh and the host both know the servers by name.
	kh := filepath.Join(t.TempDir(), "known_hosts")
	for _, p := range []string{kh, r.hostKnown} {
		if err := os.WriteFile(p, []byte(known), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range logins {
		t.Run(c.format, func(t *testing.T) {
			sshd := c.sshd
			before := len(r.calls.ops(bus.OpSign))
			me := currentUser(t)
			out, err := r.run("ssh", "-F", "none", "-p", sshd.Port, "-o", "UserKnownHostsFile="+kh, "-o", "BatchMode=yes",
				"-o", "IdentitiesOnly=no", "-l", me, "127.0.0.1", "echo", "logged-in")
			if err != nil || !strings.Contains(out, "logged-in") {
				t.Fatalf("ssh through the shed's agent: %v: %s", err, out)
			}
			var signed bool
			for _, call := range r.calls.ops(bus.OpSign)[before:] {
				if call.err != nil {
					continue // ssh may try the other allowlisted key first
				}
				var req bus.SSHSignRequest
				var resp bus.SSHSignResponse
				_ = json.Unmarshal(call.payload, &req)
				_ = json.Unmarshal(call.response, &resp)
				if !bytes.Equal(req.Key, c.key.Pub.Marshal()) {
					continue
				}
				signed = true
				if resp.Format != c.format {
					t.Errorf("signature format %s, want %s", resp.Format, c.format)
				}
				if c.format == ssh.KeyAlgoRSASHA512 && req.Flags != uint32(agent.SignatureFlagRsaSha512) {
					t.Errorf("flags %d, want rsa-sha2-512", req.Flags)
				}
				if req.AgentConn == 0 {
					t.Error("sign without an agent connection number")
				}
			}
			if !signed {
				t.Fatal("no signature with the authorized key crossed to the host")
			}
			var login bool
			for _, rec := range r.records(bus.OpSign) {
				if rec.Result == "ok" && rec.Action.Subject == c.key.FP && strings.HasSuffix(rec.Action.Detail, " "+me+"@[127.0.0.1]:"+sshd.Port) {
					login = true
				}
			}
			if !login {
				t.Fatalf("no audited login to %s@[127.0.0.1]:%s: %+v", me, sshd.Port, r.records(bus.OpSign))
			}
			if binds := r.records(bus.OpExtension); len(binds) == 0 || binds[len(binds)-1].Result != "ok" {
				t.Fatalf("session-bind was not forwarded: %+v", binds)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	r := newRig(t)
	fresh := sshkeystest.NewKey(t, t.TempDir(), "fresh", "ed25519")
	out, err := r.run("ssh-add", fresh.Path)
	if err == nil {
		t.Fatalf("ssh-add into the shed's agent succeeded: %s", out)
	}
	if out, err := r.run("ssh-add", "-D"); err == nil {
		t.Fatalf("ssh-add -D succeeded: %s", out)
	}
	if out, err := r.run("ssh-add", "-d", r.ed.Path+".pub"); err == nil {
		t.Fatalf("ssh-add -d succeeded: %s", out)
	}
	nc, err := net.Dial("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	client := agent.NewClient(nc)
	if err := client.Lock([]byte("hunter2")); err == nil {
		t.Fatal("lock succeeded")
	}
	if err := client.Unlock([]byte("hunter2")); err == nil {
		t.Fatal("unlock succeeded")
	}

	// Each refusal was audited by the host as a denial.
	want := map[string]bool{"add": false, "remove_all": false, "remove": false, "lock": false, "unlock": false}
	for _, rec := range r.broker.Records() {
		if _, ok := want[rec.Op]; ok {
			if rec.Result != "denied" || rec.Code != bus.CodeNotAllowed {
				t.Errorf("%s audited as %s %s", rec.Op, rec.Result, rec.Code)
			}
			want[rec.Op] = true
			if rec.Op == "add" && rec.Action.Subject != fresh.FP {
				t.Errorf("add audited for %q, want %s", rec.Action.Subject, fresh.FP)
			}
		}
	}
	for op, seen := range want {
		if !seen {
			t.Errorf("%s was not reported to the host", op)
		}
	}
	// What crossed for add is the public key and nothing else.
	adds := r.calls.ops("add")
	if len(adds) != 1 {
		t.Fatalf("%d add calls", len(adds))
	}
	var k bus.SSHKey
	dec := json.NewDecoder(bytes.NewReader(adds[0].payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil || !bytes.Equal(k.Blob, fresh.Pub.Marshal()) {
		t.Fatalf("add sent %s", adds[0].payload)
	}
	for _, op := range []string{"lock", "unlock"} {
		if c := r.calls.ops(op); len(c) != 1 || string(c[0].payload) != "null" {
			t.Fatalf("%s sent %v (the passphrase must stay in the shed)", op, c)
		}
	}
	assertNoPrivateKey(t, fresh.Path, r.log.String())
	// The host agent's keys are untouched.
	hostKeys, err := agentList(r.hostAgent.Sock)
	if err != nil || len(hostKeys) != 3 {
		t.Fatalf("host agent has %d keys (%v)", len(hostKeys), err)
	}
	if !strings.Contains(r.log.String(), ErrReadOnly.Error()) {
		t.Fatalf("the guest log does not say why:\n%s", r.log)
	}
}

func agentList(sock string) ([]*agent.Key, error) {
	nc, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	return agent.NewClient(nc).List()
}

// assertNoPrivateKey fails if any line of the private key file's body
// appears in text.
func assertNoPrivateKey(t *testing.T, keyFile, text string) {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(text, line) {
			t.Fatalf("private key material of %s appears in the output", filepath.Base(keyFile))
		}
	}
}

// TestHostGone: with the host detached, requests fail fast and the guest
// log says what to do, once.
func TestHostGone(t *testing.T) {
	r := newRig(t)
	if out, err := r.run("ssh-add", "-l"); err != nil {
		t.Fatalf("ssh-add -l: %v: %s", err, out)
	}
	r.guest.Close() // the host went away
	for range 3 {
		start := time.Now()
		if out, err := r.run("ssh-add", "-l"); err == nil {
			t.Fatalf("ssh-add -l succeeded with the host gone: %s", out)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("ssh-add -l took %s to fail", d)
		}
	}
	if n := strings.Count(r.log.String(), "level=WARN msg=\"sshagent: "+bus.HostUnreachable); n != 1 {
		t.Fatalf("the advice was logged %d times, want once:\n%s", n, r.log)
	}
}

// unreachable is the daemon's answer when no host is connected.
type unreachable struct{}

func (unreachable) Call(context.Context, string, string, any, any) error {
	return bus.Errorf(bus.CodeHostUnreachable, "spuff is not running on your computer — start it from the menu bar or with `spuff-app --headless`, then retry")
}

func TestHostUnreachableLoggedOnce(t *testing.T) {
	r := &rig{t: t, log: &testenv.Buffer{}}
	r.sock = filepath.Join(sshkeystest.ShortDir(t), "ssh-agent.sock")
	r.serve(unreachable{})
	pub := sshkeystest.NewKey(t, t.TempDir(), "k", "ed25519")
	for range 3 {
		if _, err := r.run("ssh-add", "-l"); err == nil {
			t.Fatal("ssh-add -l succeeded")
		}
		if _, err := r.run("ssh-add", "-T", pub.Path+".pub"); err == nil {
			t.Fatal("ssh-add -T succeeded")
		}
	}
	if n := strings.Count(r.log.String(), "level=WARN msg=\"sshagent: spuff is not running on your computer"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, r.log)
	}
}

func TestConnectionNumbers(t *testing.T) {
	r := newRig(t)
	var conns []uint64
	for range 2 {
		nc, err := net.Dial("unix", r.sock)
		if err != nil {
			t.Fatal(err)
		}
		c := agent.NewClient(nc)
		for range 2 {
			if _, err := c.Sign(r.ed.Pub, []byte("data")); err != nil {
				t.Fatal(err)
			}
		}
		nc.Close()
	}
	for _, call := range r.calls.ops(bus.OpSign) {
		var req bus.SSHSignRequest
		_ = json.Unmarshal(call.payload, &req)
		conns = append(conns, req.AgentConn)
	}
	if len(conns) != 4 || conns[0] == 0 || conns[0] != conns[1] || conns[2] != conns[3] || conns[1] == conns[2] {
		t.Fatalf("agent connection numbers %v: want one per client connection", conns)
	}
	// Unknown extensions stay in the shed.
	nc, err := net.Dial("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := agent.NewClient(nc).Extension("query", nil); err != agent.ErrExtensionUnsupported {
		t.Fatalf("query extension: %v", err)
	}
	if n := len(r.calls.ops(bus.OpExtension)); n != 0 {
		t.Fatalf("%d extension calls crossed", n)
	}
}

func TestListen(t *testing.T) {
	dir := sshkeystest.ShortDir(t)
	p := filepath.Join(dir, "a.sock")
	l, err := Listen(p, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	if _, err := Listen(p, -1); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the directory holds %d entries, want the socket only", len(entries))
	}
	l.Close()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after Close: %v", err)
	}

	// A stale socket (its server died without removing it) is replaced.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	gid := os.Getgid()
	l, err = Listen(p, gid)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	defer l.Close()
	fi, _ = os.Lstat(p)
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("group socket mode %v", fi.Mode())
	}

	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(regular, -1); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(regular); string(b) != "x" {
		t.Fatal("the regular file changed")
	}
}

// Serve's end closes the connections still open, so it returns while a
// client sits idle on its socket.
func TestServeEndsWithAClientConnected(t *testing.T) {
	r := newRig(t)
	nc, err := net.Dial("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := agent.NewClient(nc).List(); err != nil {
		t.Fatal(err)
	}
	r.stop()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the client's read after Serve ended: %v, want EOF", err)
	}
}
