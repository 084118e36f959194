package sshkeys

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// destEnv is a shed whose ssh.destinations allow only allowed.example; the
// host's known_hosts names three servers.
type destEnv struct {
	*env
	tb                             testing.TB
	allowed, other, jump, stranger hostKey
}

func newDestEnv(t testing.TB) *destEnv {
	fx := newFixture(t)
	d := &destEnv{allowed: newHostKey(t), other: newHostKey(t), jump: newHostKey(t), stranger: newHostKey(t)}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	lines := "[allowed.example]:2222 " + string(marshalAuthorized(d.allowed)) +
		"other.example " + string(marshalAuthorized(d.other)) +
		"jump.corp.example " + string(marshalAuthorized(d.jump))
	if err := os.WriteFile(kh, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	d.tb = t
	d.env = &env{svc: NewService(keyringWith(t, fx.ed.Path), ServiceOptions{KnownHosts: NewKnownHosts(kh)}), fx: fx}
	return d
}

// call sends one request as shed my-shed with the given destinations.
func (d *destEnv) call(dests []string, op string, payload any) (*helper.Action, error) {
	d.tb.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		d.tb.Fatal(err)
	}
	cfg := (&config.Config{SSH: config.SSH{Destinations: dests}}).ForShed("my-shed")
	r := &helper.Request{ID: bus.NewID(), Shed: "my-shed", NS: bus.NSSSHAgent, Op: op, Payload: raw, Config: &cfg}
	a, err := d.svc.Describe(context.Background(), r)
	if err != nil {
		return nil, err
	}
	_, err = d.svc.Serve(context.Background(), r, a)
	return a, err
}

var onlyAllowed = []string{"[allowed.example]:2222", "*.corp.example"}

func (d *destEnv) bind(conn uint64, contents []byte) (*helper.Action, error) {
	return d.call(onlyAllowed, bus.OpExtension, busExt(contents, conn))
}

func (d *destEnv) login(conn uint64, data []byte) (*helper.Action, error) {
	return d.call(onlyAllowed, bus.OpSign, bus.SSHSignRequest{Key: d.fx.ed.Pub.Marshal(), Data: data, AgentConn: conn})
}

// refused asserts a NOT_ALLOWED refusal whose audit detail says why.
func refused(t *testing.T, what string, a *helper.Action, err error, detail string) {
	t.Helper()
	if bus.CodeOf(err) != bus.CodeNotAllowed {
		t.Fatalf("%s: %v, want NOT_ALLOWED", what, err)
	}
	if a == nil || !strings.HasSuffix(a.Detail, detail) {
		t.Fatalf("%s: audit detail %+v, want it to end %q", what, a, detail)
	}
	if a.Class != "" {
		t.Fatalf("%s: a refused login still asks a human (class %q)", what, a.Class)
	}
}

func TestDestinationAllowedLogin(t *testing.T) {
	d := newDestEnv(t)
	sid := randBytes(32)
	if _, err := d.bind(1, d.allowed.bind(t, sid, false)); err != nil {
		t.Fatal(err)
	}
	a, err := d.login(1, userauthData(sid, "git", d.fx.ed.Pub, nil))
	if err != nil {
		t.Fatalf("a bound login to an allowed server: %v", err)
	}
	if !strings.HasSuffix(a.Detail, "git@[allowed.example]:2222") || !strings.Contains(a.Prompt, "sign in to git@[allowed.example]:2222") {
		t.Fatalf("detail %q prompt %q do not name the destination", a.Detail, a.Prompt)
	}
	// The hostbound method, naming the bound server, is fine too.
	sid2 := randBytes(32)
	if _, err := d.bind(2, d.allowed.bind(t, sid2, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.login(2, userauthData(sid2, "git", d.fx.ed.Pub, d.allowed.pub)); err != nil {
		t.Fatalf("hostbound login: %v", err)
	}
}

func TestDestinationRefusals(t *testing.T) {
	d := newDestEnv(t)

	// Not allowed: a well-bound login to a server the patterns do not name.
	sid := randBytes(32)
	if _, err := d.bind(1, d.other.bind(t, sid, false)); err != nil {
		t.Fatal(err)
	}
	a, err := d.login(1, userauthData(sid, "git", d.fx.ed.Pub, nil))
	refused(t, "not allowed", a, err, "git@other.example refused: not allowed other.example")

	// Unknown host key: bound correctly, but the host's known_hosts does not know it.
	sid = randBytes(32)
	if _, err := d.bind(2, d.stranger.bind(t, sid, false)); err != nil {
		t.Fatal(err)
	}
	a, err = d.login(2, userauthData(sid, "git", d.fx.ed.Pub, nil))
	refused(t, "unknown host", a, err, "refused: unknown host key unknown-host("+fingerprint(d.stranger.pub.Marshal())+")")

	// Unbound: an ssh that sends no session-bind.
	a, err = d.login(3, userauthData(randBytes(32), "git", d.fx.ed.Pub, nil))
	refused(t, "unbound", a, err, "refused: unbound")
	if !strings.Contains(err.Error(), "OpenSSH 8.9") {
		t.Fatalf("the unbound refusal does not say what to do: %v", err)
	}

	// A forged session-bind: allowed.example's key, signed by another key.
	forged := ssh.Marshal(struct {
		HostKey, SID, Sig []byte
		Fwd               bool
	}{d.allowed.pub.Marshal(), sid, ssh.Marshal(d.other.sign(t, sid)), false})
	a, err = d.bind(4, forged)
	if bus.CodeOf(err) != bus.CodeBadRequest || a.Detail != "session-bind invalid" {
		t.Fatalf("forged bind: %+v %v", a, err)
	}
	a, err = d.login(4, userauthData(sid, "git", d.fx.ed.Pub, nil))
	refused(t, "login after a forged bind", a, err, "refused: unbound")

	// A replayed session-bind: a real bind for allowed.example, taken from
	// the connection it was made on and sent again on another.
	real := randBytes(32)
	bind := d.allowed.bind(t, real, false)
	if _, err := d.bind(5, bind); err != nil {
		t.Fatal(err)
	}
	a, err = d.bind(6, bind)
	if bus.CodeOf(err) != bus.CodeNotAllowed || !strings.HasSuffix(a.Detail, " refused") || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replayed bind: %+v %v", a, err)
	}
	// ... and the evil login it was meant to cover, on that connection.
	a, err = d.login(6, userauthData(randBytes(32), "git", d.fx.ed.Pub, nil))
	refused(t, "login after a replayed bind", a, err, "refused: unbound")

	// A sign whose session id differs from the one bound on the connection.
	a, err = d.login(5, userauthData(randBytes(32), "git", d.fx.ed.Pub, nil))
	refused(t, "session id mismatch", a, err, "refused: session id mismatch [allowed.example]:2222")

	// Raw sign of userauth-shaped data naming a made-up host key: unbound…
	madeUp := newHostKey(t)
	a, err = d.login(7, userauthData(randBytes(32), "git", d.fx.ed.Pub, madeUp.pub))
	refused(t, "made-up host key, unbound", a, err, "refused: unbound")
	// … or on a connection bound to an allowed server.
	sid = randBytes(32)
	if _, err := d.bind(8, d.allowed.bind(t, sid, false)); err != nil {
		t.Fatal(err)
	}
	a, err = d.login(8, userauthData(sid, "git", d.fx.ed.Pub, madeUp.pub))
	refused(t, "made-up host key, bound", a, err, "refused: session id mismatch unknown-host("+fingerprint(madeUp.pub.Marshal())+")")
}

// TestDestinationForwardingChain: ssh -A to an allowed jump host, then a
// login from there: every hop bound on the connection must be allowed.
func TestDestinationForwardingChain(t *testing.T) {
	d := newDestEnv(t)
	hop := randBytes(32)
	if _, err := d.bind(1, d.jump.bind(t, hop, true)); err != nil {
		t.Fatal(err)
	}
	sid := randBytes(32)
	if _, err := d.bind(1, d.allowed.bind(t, sid, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.login(1, userauthData(sid, "git", d.fx.ed.Pub, nil)); err != nil {
		t.Fatalf("allowed jump → allowed server: %v", err)
	}

	// An allowed first hop does not let the next one go anywhere.
	if _, err := d.bind(2, d.jump.bind(t, randBytes(32), true)); err != nil {
		t.Fatal(err)
	}
	sid = randBytes(32)
	if _, err := d.bind(2, d.other.bind(t, sid, false)); err != nil {
		t.Fatal(err)
	}
	a, err := d.login(2, userauthData(sid, "git", d.fx.ed.Pub, nil))
	refused(t, "allowed jump → refused server", a, err, "refused: not allowed other.example")

	// Nor does an allowed last hop excuse a refused first one.
	if _, err := d.bind(3, d.other.bind(t, randBytes(32), true)); err != nil {
		t.Fatal(err)
	}
	sid = randBytes(32)
	if _, err := d.bind(3, d.allowed.bind(t, sid, false)); err != nil {
		t.Fatal(err)
	}
	a, err = d.login(3, userauthData(sid, "git", d.fx.ed.Pub, nil))
	refused(t, "refused jump → allowed server", a, err, "refused: not allowed other.example")

	// A login over a connection whose last bind is for forwarding is not bound for it.
	if _, err := d.bind(4, d.jump.bind(t, randBytes(32), true)); err != nil {
		t.Fatal(err)
	}
	a, err = d.login(4, userauthData(randBytes(32), "git", d.fx.ed.Pub, nil))
	refused(t, "login on a forwarding-only connection", a, err, "refused: session id mismatch jump.corp.example")
}

// TestDestinationsLeaveSSHSig: git commit signing and other non-logins are
// not logins; a restricted shed signs them unbound.
func TestDestinationsLeaveSSHSig(t *testing.T) {
	d := newDestEnv(t)
	if _, err := d.login(1, sshsigData("git")); err != nil {
		t.Fatalf("sshsig in a restricted shed: %v", err)
	}
	// Unrestricted sheds keep today's behaviour: an unbound login signs.
	if _, err := d.call(nil, bus.OpSign, bus.SSHSignRequest{Key: d.fx.ed.Pub.Marshal(), Data: userauthData(randBytes(32), "git", d.fx.ed.Pub, nil), AgentConn: 9}); err != nil {
		t.Fatalf("unrestricted unbound login: %v", err)
	}
}

// FuzzSessionBindPolicy feeds a restricted shed any session-bind contents,
// then a login for the session they name: the login may sign only when the
// contents were a bind that verifies, by a host key known_hosts names
// allowed.example.
func FuzzSessionBindPolicy(f *testing.F) {
	d := newDestEnv(f)
	sid := randBytes(32)
	f.Add(d.allowed.bind(f, sid, false))
	f.Add(d.other.bind(f, sid, false))
	f.Add(d.allowed.bind(f, sid, true))
	f.Add([]byte{0, 0, 0, 1})
	var conn uint64
	f.Fuzz(func(t *testing.T, contents []byte) {
		d.tb = t
		conn++
		_, bindErr := d.bind(conn, contents)
		b, perr := ParseSessionBind(contents)
		if (perr == nil) != (bindErr == nil) && bus.CodeOf(bindErr) != bus.CodeNotAllowed {
			t.Fatalf("parse %v, bind %v", perr, bindErr)
		}
		sid := randBytes(32)
		if b != nil {
			sid = b.SessionID
		}
		_, err := d.login(conn, userauthData(sid, "git", d.fx.ed.Pub, nil))
		if err == nil && (bindErr != nil || b.Forwarding || !config.MatchDestination(onlyAllowed, d.svc.known.Names(b.HostKey))) {
			t.Fatalf("a login signed after bind %x (%v)", contents, bindErr)
		}
		d.svc.Forget("my-shed")
	})
}
