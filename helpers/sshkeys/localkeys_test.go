package sshkeys

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/testenv"
)

func TestLocalKeysSkips(t *testing.T) {
	dir := t.TempDir()
	keygen := testenv.Tool(t, "ssh-keygen")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(keygen, args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v: %v: %s", args, err, out)
		}
	}
	run("-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", filepath.Join(dir, "id_ed25519"))
	run("-q", "-t", "ecdsa", "-N", "correct horse", "-f", filepath.Join(dir, "id_ecdsa"))
	run("-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", filepath.Join(dir, "id_rsa"))
	if err := os.Chmod(filepath.Join(dir, "id_rsa"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A security key's file is a handle to hardware; its content is beside the point.
	if err := os.WriteFile(filepath.Join(dir, "id_ed25519_sk"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "id_xmss"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}

	b, err := NewBackend(ModeLocalKeys, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := b.List()
	if len(keys) != 1 || keys[0].Format != "ssh-ed25519" || keys[0].Comment != "laptop" {
		t.Fatalf("local keys: %v", keys)
	}
	want := map[string]string{
		"id_ecdsa":      "passphrase",
		"id_rsa":        "chmod 600",
		"id_ed25519_sk": "security key",
		"id_xmss":       "ssh-add",
	}
	skipped := b.Skipped()
	for _, s := range skipped {
		frag, ok := want[filepath.Base(s.Path)]
		if !ok {
			t.Errorf("skipped %s unexpectedly: %s", s.Path, s.Reason)
			continue
		}
		if !strings.Contains(s.Reason, frag) {
			t.Errorf("%s skipped for %q, want it to say %q", s.Path, s.Reason, frag)
		}
		delete(want, filepath.Base(s.Path))
	}
	for name := range want {
		t.Errorf("%s was not reported as skipped", name)
	}
	if b.Mode() != ModeLocalKeys {
		t.Errorf("mode %q", b.Mode())
	}
	if err := b.Add(agent.AddedKey{}); !errors.Is(err, errReadOnly) {
		t.Errorf("Add: %v", err)
	}
}

func TestNewBackendModes(t *testing.T) {
	dir := t.TempDir()
	sshkeystest.NewKey(t, dir, "id_ed25519", "ed25519")
	live := sshkeystest.StartAgent(t)
	dead := filepath.Join(sshkeystest.ShortDir(t), "gone.sock")
	cases := []struct {
		mode, sock, want string
		err              bool
	}{
		{"", "", ModeLocalKeys, false},
		{ModeAuto, dead, ModeLocalKeys, false},
		{ModeAuto, live.Sock, ModeAgentForward, false},
		{ModeAgentForward, live.Sock, ModeAgentForward, false},
		{ModeAgentForward, dead, ModeAgentForward, false}, // it may start later
		{ModeAgentForward, "", "", true},
		{ModeLocalKeys, live.Sock, ModeLocalKeys, false},
		{"yubikey", "", "", true},
	}
	for _, c := range cases {
		b, err := NewBackend(c.mode, c.sock, dir, nil)
		if (err != nil) != c.err {
			t.Errorf("NewBackend(%q, %q): %v", c.mode, c.sock, err)
			continue
		}
		if err == nil {
			if b.Mode() != c.want {
				t.Errorf("NewBackend(%q, %q) chose %s, want %s", c.mode, c.sock, b.Mode(), c.want)
			}
			b.Close()
		}
	}
}

// TestForwardSurvivesAgentRestart: pooled connections to an agent that
// went away are replaced, not reported as failures.
func TestForwardSurvivesAgentRestart(t *testing.T) {
	fx := newFixture(t)
	a := sshkeystest.StartAgent(t, fx.ed.Path)
	b, err := NewBackend(ModeAgentForward, a.Sock, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.List(); err != nil {
		t.Fatal(err)
	}
	if n := len(b.fwd.idle); n != 1 {
		t.Fatalf("%d idle connections after one list", n)
	}
	a.Stop()
	sshkeystest.StartAgentAt(t, a.Sock, fx.ed.Path)
	keys, err := b.List()
	if err != nil || len(keys) != 1 {
		t.Fatalf("after a restart: %d keys, %v", len(keys), err)
	}
}

// TestForwardReadsAReplyInOneRead: the host agent's reply (length, then
// body) reaches the agent client through one read of the socket, not two.
func TestForwardReadsAReplyInOneRead(t *testing.T) {
	fx := newFixture(t)
	a := sshkeystest.StartAgent(t, fx.ed.Path)
	nc, err := net.Dial("unix", a.Sock)
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: nc}
	c := newAgentConn(cc)
	defer c.nc.Close()
	const n = 20
	for i := range n {
		data := []byte{byte(i)}
		sig, err := c.c.SignWithFlags(fx.ed.Pub, data, 0)
		if err == nil {
			err = fx.ed.Pub.Verify(data, sig)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// One read a reply; a little slack for an agent that splits a write.
	if cc.reads > n+n/4 {
		t.Fatalf("%d reads of the socket for %d replies", cc.reads, n)
	}
}

type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

func TestForwardConcurrent(t *testing.T) {
	fx := newFixture(t)
	a := sshkeystest.StartAgent(t, fx.ed.Path, fx.rsa.Path)
	b, err := NewBackend(ModeAgentForward, a.Sock, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				data := []byte{byte(g), byte(i)}
				k, flags := fx.ed.Pub, agent.SignatureFlags(0)
				if i%5 == 0 {
					k, flags = fx.rsa.Pub, agent.SignatureFlagRsaSha512
				}
				sig, err := b.SignWithFlags(k, data, flags)
				if err == nil {
					err = k.Verify(data, sig)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(b.fwd.idle); n == 0 || n > b.fwd.maxIdle {
		t.Fatalf("%d idle connections", n)
	}
}

func TestDestinationConstrainedKey(t *testing.T) {
	fx := newFixture(t)
	a := sshkeystest.StartAgent(t)
	target, other := newHostKey(t), newHostKey(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("target.example "+string(marshalAuthorized(target))), 0o600); err != nil {
		t.Fatal(err)
	}
	// ssh-add -h: the host agent signs with this key only for target.example.
	cmd := exec.Command(testenv.Tool(t, "ssh-add"), "-q", "-H", kh, "-h", "target.example", fx.ed.Path)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+a.Sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add -h: %v: %s", err, out)
	}
	b, err := NewBackend(ModeAgentForward, a.Sock, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e := &env{t: t, svc: NewService(b, ServiceOptions{KnownHosts: NewKnownHosts(kh)}), fx: fx}
	defer e.svc.Close()

	for i, c := range []struct {
		host hostKey
		ok   bool
	}{{target, true}, {other, false}} {
		conn := uint64(i + 1)
		sid := randBytes(32)
		if _, _, err := e.do(nil, "extension", busExt(c.host.bind(t, sid, false), conn)); err != nil {
			t.Fatalf("session-bind: %v", err)
		}
		a, _, err := e.sign(nil, fx.ed.Pub, userauthData(sid, "git", fx.ed.Pub, c.host.pub), 0, conn)
		if c.ok && err != nil {
			t.Fatalf("login to the permitted host: %v", err)
		}
		if !c.ok && err == nil {
			t.Fatal("the host agent signed a login to a host its constraint does not name: session-bind was not forwarded")
		}
		if c.ok && !strings.HasSuffix(a.Detail, " git@target.example") {
			t.Errorf("detail %q", a.Detail)
		}
	}
}

// TestBackendSignersAreTheLoginIdentity: in either mode the backend's
// signers are its keys, signing through it, with the RSA hash the SSH
// handshake asks for; a host logs in to sheds with exactly these.
func TestBackendSignersAreTheLoginIdentity(t *testing.T) {
	dir := sshkeystest.ShortDir(t)
	ed := sshkeystest.NewKey(t, dir, "id_ed25519", "ed25519")
	rsa := sshkeystest.NewKey(t, dir, "id_rsa", "rsa")
	other := sshkeystest.NewKey(t, t.TempDir(), "id_ecdsa", "ecdsa")
	ag := sshkeystest.StartAgent(t, other.Path)
	for _, tc := range []struct {
		mode string
		want []sshkeystest.Key
	}{
		{ModeLocalKeys, []sshkeystest.Key{rsa, ed}}, // ssh's order of identity files
		{ModeAgentForward, []sshkeystest.Key{other}},
	} {
		b, err := NewBackend(tc.mode, ag.Sock, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		signers, err := b.Signers()
		if err != nil || len(signers) != len(tc.want) {
			t.Fatalf("%s: %d signers, %v; want %d", tc.mode, len(signers), err, len(tc.want))
		}
		for i, s := range signers {
			if s.PublicKey().Type() != tc.want[i].Pub.Type() || ssh.FingerprintSHA256(s.PublicKey()) != tc.want[i].FP {
				t.Fatalf("%s: signer %d is %s, want %s", tc.mode, i, ssh.FingerprintSHA256(s.PublicKey()), tc.want[i].FP)
			}
			algos := []string{""}
			if s.PublicKey().Type() == ssh.KeyAlgoRSA {
				algos = []string{ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512}
			}
			for _, algo := range algos {
				data := []byte("session " + algo)
				sig, err := s.(ssh.AlgorithmSigner).SignWithAlgorithm(nil, data, algo)
				if err != nil {
					t.Fatalf("%s: signing as %q: %v", tc.mode, algo, err)
				}
				if algo != "" && sig.Format != algo {
					t.Fatalf("%s: asked for %s, got a %s signature", tc.mode, algo, sig.Format)
				}
				if err := s.PublicKey().Verify(data, sig); err != nil {
					t.Fatalf("%s: signature does not verify: %v", tc.mode, err)
				}
			}
			if _, err := s.(ssh.AlgorithmSigner).SignWithAlgorithm(nil, []byte("x"), "ssh-dss"); err == nil {
				t.Fatalf("%s: a %s key signed as ssh-dss", tc.mode, s.PublicKey().Type())
			}
		}
		b.Close()
	}
}
