package sshkeys

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

func TestDescribeLogin(t *testing.T) {
	fx := newFixture(t)
	gh, stranger := newHostKey(t), newHostKey(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("github.com,140.82.121.3 "+string(marshalAuthorized(gh))), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: NewService(keyringWith(t, fx.ed.Path), ServiceOptions{KnownHosts: NewKnownHosts(kh)}), fx: fx}
	edDesc := "ssh-ed25519 " + fx.ed.FP

	// Hostbound: the login names its server.
	a, _, err := e.sign(nil, fx.ed.Pub, userauthData(randBytes(32), "git", fx.ed.Pub, gh.pub), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Detail != edDesc+" git@github.com" || a.Class != helper.ClassSSHLogin || a.Subject != fx.ed.FP {
		t.Fatalf("action %+v", a)
	}
	if want := "my-shed wants to sign in to git@github.com with " + edDesc + " (id_ed25519)"; a.Prompt != want {
		t.Fatalf("prompt %q\nwant   %q", a.Prompt, want)
	}

	// Plain publickey method: the server comes from the connection's session-bind.
	sid := randBytes(32)
	if _, _, err := e.do(nil, bus.OpExtension, busExt(gh.bind(t, sid, false), 2)); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := e.sign(nil, fx.ed.Pub, userauthData(sid, "git", fx.ed.Pub, nil), 0, 2); a.Detail != edDesc+" git@github.com" {
		t.Fatalf("bound publickey detail %q", a.Detail)
	}
	// No binding, no host key: the server is unknown.
	if a, _, _ := e.sign(nil, fx.ed.Pub, userauthData(randBytes(32), "git", fx.ed.Pub, nil), 0, 3); a.Detail != edDesc+" git@unknown-host" {
		t.Fatalf("unbound detail %q", a.Detail)
	}
	// A host key known_hosts does not name.
	a, _, _ = e.sign(nil, fx.ed.Pub, userauthData(randBytes(32), "root", fx.ed.Pub, stranger.pub), 0, 4)
	if a.Detail != edDesc+" root@unknown-host("+fingerprint(stranger.pub.Marshal())+")" {
		t.Fatalf("unknown host detail %q", a.Detail)
	}
	// A guest-chosen user name cannot forge lines in a prompt.
	a, _, _ = e.sign(nil, fx.ed.Pub, userauthData(randBytes(32), "git\nApprove: yes\x1b[2J", fx.ed.Pub, gh.pub), 0, 5)
	if strings.ContainsAny(a.Prompt, "\n\x1b") || strings.ContainsAny(a.Detail, "\n\x1b") {
		t.Fatalf("control characters reached the prompt: %q", a.Prompt)
	}
	// Data that is neither a login nor an sshsig still asks as a sign.
	a, _, _ = e.sign(nil, fx.ed.Pub, []byte("challenge"), 0, 6)
	if a.Class != helper.ClassSSHSign || a.Detail != edDesc+" data" {
		t.Fatalf("unknown data action %+v", a)
	}
	// List refines its detail with the count.
	if a, _, _ := e.do(nil, bus.OpList, nil); a.Detail != "1 keys" {
		t.Fatalf("list detail %q", a.Detail)
	}
	// Nothing in a detail or prompt is the data itself.
	a, _, _ = e.sign(nil, fx.ed.Pub, []byte("SECRET-CHALLENGE"), 0, 6)
	if strings.Contains(a.Detail+a.Prompt, "SECRET") {
		t.Fatal("sign data leaked into the audit detail")
	}
}

// TestNoConfigFailsClosed: a request the broker forgot to resolve the
// shed's configuration for gets no keys.
func TestNoConfigFailsClosed(t *testing.T) {
	fx := newFixture(t)
	svc := NewService(keyringWith(t, fx.ed.Path), ServiceOptions{})
	raw, _ := json.Marshal(bus.SSHSignRequest{Key: fx.ed.Pub.Marshal(), Data: []byte("x")})
	r := &helper.Request{ID: bus.NewID(), Shed: "s", NS: bus.NSSSHAgent, Op: bus.OpSign, Payload: raw}
	a, err := svc.Describe(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Serve(context.Background(), r, a); bus.CodeOf(err) != bus.CodeNotAllowed {
		t.Fatalf("sign without config: %v", err)
	}
	r.Op, r.Payload = bus.OpList, nil
	out, err := svc.Serve(context.Background(), r, &helper.Action{})
	if err != nil || len(out.(bus.SSHListResponse).Keys) != 0 {
		t.Fatalf("list without config: %v %v", out, err)
	}
}

// TestServeActsOnWhatDescribeRead: Serve signs the request Describe read
// (the broker hands it the Action Describe returned) without decoding the
// payload again; given an Action of its own, it decodes the payload.
func TestServeActsOnWhatDescribeRead(t *testing.T) {
	fx := newFixture(t)
	svc := NewService(keyringWith(t, fx.ed.Path), ServiceOptions{})
	cfg := (&config.Config{}).ForShed("s")
	data := []byte("challenge")
	raw, _ := json.Marshal(bus.SSHSignRequest{Key: fx.ed.Pub.Marshal(), Data: data, AgentConn: 1})
	r := &helper.Request{ID: bus.NewID(), Shed: "s", NS: bus.NSSSHAgent, Op: bus.OpSign, Payload: raw, Config: &cfg}
	a, err := svc.Describe(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	r.Payload = json.RawMessage(`{"key":"AAAA"}`) // a key nobody holds, were it decoded
	out, err := svc.Serve(context.Background(), r, a)
	if err != nil {
		t.Fatalf("serve after describe: %v", err)
	}
	resp := out.(bus.SSHSignResponse)
	if err := fx.ed.Pub.Verify(data, &ssh.Signature{Format: resp.Format, Blob: resp.Blob}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Serve(context.Background(), r, &helper.Action{}); bus.CodeOf(err) != bus.CodeKeyNotFound {
		t.Fatalf("serve with an action of its own: %v", err)
	}
}

// TestKeyCache: a key added to the host agent after the last list is found
// on the next sign; a sign does not list when the key is known.
func TestKeyCache(t *testing.T) {
	fx := newFixture(t)
	kr := &countingAgent{ExtendedAgent: keyringWith(t, fx.ed.Path)}
	e := &env{t: t, svc: NewService(kr, ServiceOptions{}), fx: fx}
	e.list(nil)
	for range 5 {
		if _, _, err := e.sign(nil, fx.ed.Pub, randBytes(8), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if kr.lists != 1 {
		t.Fatalf("%d lists for one list and five signs of a known key", kr.lists)
	}
	// The RSA key appears in the host agent; the cached list is past keysStaleOnMiss.
	e.svc.cache.at = e.svc.cache.at.Add(-keysStaleOnMiss)
	kr.ExtendedAgent = keyringWith(t, fx.ed.Path, fx.rsa.Path)
	if _, _, err := e.sign(nil, fx.rsa.Pub, randBytes(8), agent.SignatureFlagRsaSha256, 0); err != nil {
		t.Fatalf("a newly added key: %v", err)
	}
}

type countingAgent struct {
	agent.ExtendedAgent
	lists int
}

func (c *countingAgent) List() ([]*agent.Key, error) {
	c.lists++
	return c.ExtendedAgent.List()
}

func FuzzServiceRequest(f *testing.F) {
	sid := make([]byte, 32)
	_, priv, _ := ed25519Key()
	signer, _ := ssh.NewSignerFromKey(priv)
	pub := signer.PublicKey()
	key := pub.Marshal()
	for _, seed := range []struct {
		op      string
		payload any
	}{
		{bus.OpList, nil},
		{bus.OpSign, bus.SSHSignRequest{Key: key, Data: sshsigData("git"), Flags: 4, AgentConn: 1}},
		{bus.OpSign, bus.SSHSignRequest{Key: key, Data: userauthData(sid, "git", pub, nil)}},
		{bus.OpExtension, bus.SSHExtensionRequest{Type: bus.ExtSessionBind, Contents: []byte{0, 0, 0, 1, 0}}},
		{bus.OpAdd, bus.SSHKey{Blob: key}},
	} {
		raw, _ := json.Marshal(seed.payload)
		f.Add(seed.op, raw)
	}
	f.Add("sign", []byte(`{"key":"AAAA","data":"","flags":4294967295,"agent_conn":18446744073709551615}`))
	f.Add("extension", []byte(`{"type":"session-bind@openssh.com","contents":"AAAAAQ=="} {}`))
	svc := NewService(agent.NewKeyring().(agent.ExtendedAgent), ServiceOptions{})
	shed := (&config.Config{}).ForShed("fuzz")
	cfg := &shed
	f.Fuzz(func(t *testing.T, op string, payload []byte) {
		r := &helper.Request{ID: "x", Shed: "fuzz", NS: bus.NSSSHAgent, Op: op, Payload: payload, Config: cfg}
		a, err := svc.Describe(context.Background(), r)
		if err != nil {
			if bus.CodeOf(err) != bus.CodeBadRequest {
				t.Fatalf("describe failed without a wire code: %v", err)
			}
			return
		}
		if _, err := svc.Serve(context.Background(), r, a); err != nil && bus.CodeOf(err) == bus.CodeInternal {
			t.Fatalf("serve failed without a wire code: %v", err)
		}
	})
}
