package sshkeys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
)

// fixture is an ed25519 and an RSA key made by ssh-keygen, in a directory
// laid out as ~/.ssh (id_ed25519, id_rsa), and a third key nobody holds.
type fixture struct {
	dir      string
	ed, rsa  sshkeystest.Key
	stranger sshkeystest.Key
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	fx := &fixture{dir: dir}
	fx.ed = sshkeystest.NewKey(t, dir, "id_ed25519", "ed25519")
	fx.rsa = sshkeystest.NewKey(t, dir, "id_rsa", "rsa")
	fx.stranger = sshkeystest.NewKey(t, t.TempDir(), "stranger", "ed25519")
	return fx
}

func keyringWith(t testing.TB, paths ...string) agent.ExtendedAgent {
	t.Helper()
	kr := agent.NewKeyring().(agent.ExtendedAgent)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ssh.ParseRawPrivateKey(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := kr.Add(agent.AddedKey{PrivateKey: raw, Comment: filepath.Base(p)}); err != nil {
			t.Fatal(err)
		}
	}
	return kr
}

// env runs requests through a Service as the broker would, for shed
// "my-shed" with the given allowlist.
type env struct {
	t   *testing.T
	svc *Service
	fx  *fixture
}

func (e *env) do(keys []string, op string, payload any) (*helper.Action, any, error) {
	return e.doConn("my-shed", keys, op, payload)
}

func (e *env) doConn(shed string, keys []string, op string, payload any) (*helper.Action, any, error) {
	e.t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := (&config.Config{SSH: config.SSH{Keys: keys}}).ForShed(shed)
	r := &helper.Request{ID: bus.NewID(), Shed: shed, NS: bus.NSSSHAgent, Op: op, Payload: raw, Config: &cfg}
	a, err := e.svc.Describe(context.Background(), r)
	if err != nil {
		return nil, nil, err
	}
	out, err := e.svc.Serve(context.Background(), r, a)
	return a, out, err
}

func (e *env) list(keys []string) []bus.SSHKey {
	e.t.Helper()
	_, out, err := e.do(keys, bus.OpList, nil)
	if err != nil {
		e.t.Fatalf("list: %v", err)
	}
	return out.(bus.SSHListResponse).Keys
}

func (e *env) sign(keys []string, k ssh.PublicKey, data []byte, flags agent.SignatureFlags, conn uint64) (*helper.Action, *ssh.Signature, error) {
	e.t.Helper()
	a, out, err := e.do(keys, bus.OpSign, bus.SSHSignRequest{Key: k.Marshal(), Data: data, Flags: uint32(flags), AgentConn: conn})
	if err != nil {
		return a, nil, err
	}
	r := out.(bus.SSHSignResponse)
	return a, &ssh.Signature{Format: r.Format, Blob: r.Blob, Rest: r.Rest}, nil
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := bus.CodeOf(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

var conformance = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"list", func(t *testing.T, e *env) {
		keys := e.list(nil)
		var blobs []string
		for _, k := range keys {
			blobs = append(blobs, string(k.Blob))
			if k.Comment == "" {
				t.Errorf("key %s has no comment", fingerprint(k.Blob))
			}
		}
		want := []string{string(e.fx.ed.Pub.Marshal()), string(e.fx.rsa.Pub.Marshal())}
		slices.Sort(blobs)
		slices.Sort(want)
		if !slices.Equal(blobs, want) {
			t.Fatalf("list gave %d keys, want the ed25519 and the RSA key", len(keys))
		}
	}},
	{"sign ed25519", func(t *testing.T, e *env) {
		data := randBytes(64)
		a, sig, err := e.sign(nil, e.fx.ed.Pub, data, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Format != ssh.KeyAlgoED25519 {
			t.Errorf("format %q", sig.Format)
		}
		if err := e.fx.ed.Pub.Verify(data, sig); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
		if a.Subject != e.fx.ed.FP {
			t.Errorf("subject %q, want %q", a.Subject, e.fx.ed.FP)
		}
	}},
	{"sign ed25519 ignores rsa flags", func(t *testing.T, e *env) {
		data := randBytes(64)
		_, sig, err := e.sign(nil, e.fx.ed.Pub, data, agent.SignatureFlagRsaSha512, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.fx.ed.Pub.Verify(data, sig); err != nil || sig.Format != ssh.KeyAlgoED25519 {
			t.Fatalf("format %q, verify: %v", sig.Format, err)
		}
	}},
	{"sign rsa-sha2-256", func(t *testing.T, e *env) {
		data := randBytes(64)
		_, sig, err := e.sign(nil, e.fx.rsa.Pub, data, agent.SignatureFlagRsaSha256, 0)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Format != ssh.KeyAlgoRSASHA256 {
			t.Fatalf("format %q, want %s", sig.Format, ssh.KeyAlgoRSASHA256)
		}
		if err := e.fx.rsa.Pub.Verify(data, sig); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
	}},
	{"sign rsa-sha2-512", func(t *testing.T, e *env) {
		data := randBytes(64)
		_, sig, err := e.sign(nil, e.fx.rsa.Pub, data, agent.SignatureFlagRsaSha512, 0)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Format != ssh.KeyAlgoRSASHA512 {
			t.Fatalf("format %q, want %s", sig.Format, ssh.KeyAlgoRSASHA512)
		}
		if err := e.fx.rsa.Pub.Verify(data, sig); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
		data[0] ^= 1
		if e.fx.rsa.Pub.Verify(data, sig) == nil {
			t.Fatal("signature verifies over other data")
		}
	}},
	{"sign rsa without flags is ssh-rsa", func(t *testing.T, e *env) {
		data := randBytes(64)
		_, sig, err := e.sign(nil, e.fx.rsa.Pub, data, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Format != ssh.KeyAlgoRSA {
			t.Fatalf("format %q, want %s", sig.Format, ssh.KeyAlgoRSA)
		}
	}},
	{"unknown key", func(t *testing.T, e *env) {
		a, _, err := e.sign(nil, e.fx.stranger.Pub, randBytes(32), 0, 0)
		wantCode(t, err, bus.CodeKeyNotFound)
		if a.Class != "" {
			t.Errorf("an unknown key would ask for approval (class %q)", a.Class)
		}
	}},
	{"allowlist", func(t *testing.T, e *env) {
		allow := []string{e.fx.rsa.FP}
		keys := e.list(allow)
		if len(keys) != 1 || string(keys[0].Blob) != string(e.fx.rsa.Pub.Marshal()) {
			t.Fatalf("allowlisted list gave %d keys, want only the RSA key", len(keys))
		}
		a, _, err := e.sign(allow, e.fx.ed.Pub, sshsigData("git"), 0, 0)
		wantCode(t, err, bus.CodeNotAllowed)
		if a.Class != "" {
			t.Errorf("a refused key would ask for approval (class %q)", a.Class)
		}
		if _, _, err := e.sign(allow, e.fx.rsa.Pub, randBytes(32), agent.SignatureFlagRsaSha512, 0); err != nil {
			t.Fatalf("allowlisted key: %v", err)
		}
		// The prefix is optional in the config.
		if keys := e.list([]string{e.fx.ed.FP[len("SHA256:"):]}); len(keys) != 1 {
			t.Fatalf("a fingerprint without SHA256: matched %d keys", len(keys))
		}
	}},
	{"describe sshsig", func(t *testing.T, e *env) {
		a, _, err := e.sign(nil, e.fx.ed.Pub, sshsigData("git"), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if a.Class != helper.ClassSSHSign || a.Scope != "git" || a.Subject != e.fx.ed.FP {
			t.Fatalf("action %+v", a)
		}
		if want := "ssh-ed25519 " + e.fx.ed.FP + " sshsig:git"; a.Detail != want {
			t.Fatalf("detail %q, want %q", a.Detail, want)
		}
		if want := "my-shed wants to sign a git commit or tag with ssh-ed25519 " + e.fx.ed.FP + " ("; len(a.Prompt) < len(want) || a.Prompt[:len(want)] != want {
			t.Fatalf("prompt %q", a.Prompt)
		}
	}},
	{"read-only", func(t *testing.T, e *env) {
		for _, op := range []string{bus.OpAdd, bus.OpRemove} {
			a, _, err := e.do(nil, op, bus.SSHKey{Blob: e.fx.ed.Pub.Marshal()})
			wantCode(t, err, bus.CodeNotAllowed)
			if a.Subject != e.fx.ed.FP {
				t.Errorf("%s: subject %q", op, a.Subject)
			}
		}
		for _, op := range []string{bus.OpRemoveAll, bus.OpLock, bus.OpUnlock} {
			_, _, err := e.do(nil, op, nil)
			wantCode(t, err, bus.CodeNotAllowed)
		}
		if len(e.list(nil)) != 2 {
			t.Fatal("keys changed")
		}
	}},
	{"bad requests", func(t *testing.T, e *env) {
		for _, p := range []any{
			map[string]any{"key": e.fx.ed.Pub.Marshal(), "data": []byte("x"), "shed": "other"},
			map[string]any{"data": []byte("x")},
			"nope",
		} {
			_, _, err := e.do(nil, bus.OpSign, p)
			wantCode(t, err, bus.CodeBadRequest)
		}
		_, _, err := e.do(nil, "frobnicate", nil)
		wantCode(t, err, bus.CodeBadRequest)
		_, _, err = e.do(nil, bus.OpExtension, bus.SSHExtensionRequest{Type: "query"})
		wantCode(t, err, bus.CodeBadRequest)
	}},
	{"session-bind", func(t *testing.T, e *env) {
		host := newHostKey(t)
		sid := randBytes(32)
		if _, _, err := e.do(nil, bus.OpExtension, bus.SSHExtensionRequest{Type: bus.ExtSessionBind, Contents: host.bind(t, sid, false), AgentConn: 7}); err != nil {
			t.Fatalf("session-bind: %v", err)
		}
		login := userauthData(sid, "git", e.fx.ed.Pub, host.pub)
		a, sig, err := e.sign(nil, e.fx.ed.Pub, login, 0, 7)
		if err != nil {
			t.Fatalf("bound login: %v", err)
		}
		if err := e.fx.ed.Pub.Verify(login, sig); err != nil {
			t.Fatal(err)
		}
		if a.Class != helper.ClassSSHLogin {
			t.Errorf("class %q", a.Class)
		}
		// Another session on the bound connection is refused.
		_, _, err = e.sign(nil, e.fx.ed.Pub, userauthData(randBytes(32), "git", e.fx.ed.Pub, host.pub), 0, 7)
		wantCode(t, err, bus.CodeNotAllowed)
		// A connection bound for a login takes no second binding.
		_, _, err = e.do(nil, bus.OpExtension, bus.SSHExtensionRequest{Type: bus.ExtSessionBind, Contents: host.bind(t, randBytes(32), false), AgentConn: 7})
		wantCode(t, err, bus.CodeNotAllowed)
		// Other connections, and other sheds, are not bound.
		if _, _, err := e.sign(nil, e.fx.ed.Pub, userauthData(randBytes(32), "git", e.fx.ed.Pub, nil), 0, 8); err != nil {
			t.Fatalf("unbound connection: %v", err)
		}
		// After Forget, the binding is gone.
		e.svc.Forget("my-shed")
		if _, _, err := e.sign(nil, e.fx.ed.Pub, userauthData(randBytes(32), "git", e.fx.ed.Pub, nil), 0, 7); err != nil {
			t.Fatalf("after Forget: %v", err)
		}
	}},
	{"session-bind forwarded chain", func(t *testing.T, e *env) {
		h1, h2 := newHostKey(t), newHostKey(t)
		for _, b := range [][]byte{h1.bind(t, randBytes(32), true), h2.bind(t, randBytes(32), true)} {
			if _, _, err := e.do(nil, bus.OpExtension, bus.SSHExtensionRequest{Type: bus.ExtSessionBind, Contents: b, AgentConn: 9}); err != nil {
				t.Fatalf("forwarding bind: %v", err)
			}
		}
		e.svc.Forget("my-shed")
	}},
	{"session-bind forged", func(t *testing.T, e *env) {
		host, other := newHostKey(t), newHostKey(t)
		sid := randBytes(32)
		forged := ssh.Marshal(struct {
			HostKey, SID, Sig []byte
			Fwd               bool
		}{host.pub.Marshal(), sid, ssh.Marshal(other.sign(t, sid)), false})
		_, _, err := e.do(nil, bus.OpExtension, bus.SSHExtensionRequest{Type: bus.ExtSessionBind, Contents: forged, AgentConn: 3})
		wantCode(t, err, bus.CodeBadRequest)
	}},
}

func TestConformance(t *testing.T) {
	fx := newFixture(t)
	backends := []struct {
		name string
		make func(t *testing.T) agent.ExtendedAgent
	}{
		{"keyring", func(t *testing.T) agent.ExtendedAgent { return keyringWith(t, fx.ed.Path, fx.rsa.Path) }},
		{"openssh-agent", func(t *testing.T) agent.ExtendedAgent {
			a := sshkeystest.StartAgent(t, fx.ed.Path, fx.rsa.Path)
			b, err := NewBackend(ModeAgentForward, a.Sock, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		}},
		{"local-keys", func(t *testing.T) agent.ExtendedAgent {
			b, err := NewBackend(ModeLocalKeys, "", fx.dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			backend := be.make(t)
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					svc := NewService(backend, ServiceOptions{})
					t.Cleanup(func() { svc.Close() })
					c.run(t, &env{t: t, svc: svc, fx: fx})
				})
			}
		})
	}
}

// hostKey is a server's host key for session-bind tests.
type hostKey struct {
	s   ssh.Signer
	pub ssh.PublicKey
}

func newHostKey(t testing.TB) hostKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return hostKey{s, s.PublicKey()}
}

func (h hostKey) sign(t testing.TB, data []byte) *ssh.Signature {
	t.Helper()
	sig, err := h.s.Sign(rand.Reader, data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// bind builds the contents of a session-bind request, as ssh sends it.
func (h hostKey) bind(t testing.TB, sid []byte, forwarding bool) []byte {
	return ssh.Marshal(struct {
		HostKey, SID, Sig []byte
		Fwd               bool
	}{h.pub.Marshal(), sid, ssh.Marshal(h.sign(t, sid)), forwarding})
}

// userauthData is what ssh asks its agent to sign for a login; a non-nil
// host key makes it the hostbound method.
func userauthData(sid []byte, user string, key, host ssh.PublicKey) []byte {
	method := MethodPublicKey
	if host != nil {
		method = MethodHostbound
	}
	b := ssh.Marshal(struct {
		SID     []byte
		Msg     byte
		User    string
		Service string
		Method  string
		HasSig  bool
		Algo    string
		Key     []byte
	}{sid, msgUserAuthRequest, user, "ssh-connection", method, true, key.Type(), key.Marshal()})
	if host != nil {
		b = append(b, ssh.Marshal(struct{ H []byte }{host.Marshal()})...)
	}
	return b
}

// sshsigData is the blob ssh-keygen -Y sign has its agent sign.
func sshsigData(ns string) []byte {
	return append([]byte(sshsigMagic), ssh.Marshal(struct {
		NS, Reserved, Hash string
		H                  []byte
	}{ns, "", "sha512", randBytes(64)})...)
}

func busExt(contents []byte, conn uint64) bus.SSHExtensionRequest {
	return bus.SSHExtensionRequest{Type: bus.ExtSessionBind, Contents: contents, AgentConn: conn}
}

func marshalAuthorized(h hostKey) []byte { return ssh.MarshalAuthorizedKey(h.pub) }
