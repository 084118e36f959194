package sshkeys

import (
	"bytes"
	"crypto/ed25519"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/testenv"
)

func TestParseSignData(t *testing.T) {
	host := newHostKey(t)
	user := newHostKey(t).pub
	sid := bytes.Repeat([]byte{7}, 32)
	login := userauthData(sid, "git", user, nil)
	hostbound := userauthData(sid, "git", user, host.pub)
	sig := sshsigData("git")

	cases := []struct {
		name string
		data []byte
		want SignData
	}{
		{"publickey", login, SignData{Kind: KindUserAuth, SessionID: sid, User: "git", Service: "ssh-connection", Method: MethodPublicKey, Algorithm: "ssh-ed25519", Key: user.Marshal()}},
		{"hostbound", hostbound, SignData{Kind: KindUserAuth, SessionID: sid, User: "git", Service: "ssh-connection", Method: MethodHostbound, Algorithm: "ssh-ed25519", Key: user.Marshal(), HostKey: host.pub.Marshal()}},
		{"sshsig", sig, SignData{Kind: KindSSHSig, Namespace: "git", HashAlg: "sha512"}},
		{"empty", nil, SignData{}},
		{"random", randBytes(64), SignData{}},
		{"login with trailing byte", append(bytes.Clone(login), 0), SignData{}},
		{"login truncated", login[:len(login)-1], SignData{}},
		{"hostbound without host key", hostbound[:len(login)], SignData{}},
		{"publickey with a host key", append(bytes.Clone(login), ssh.Marshal(struct{ H []byte }{host.pub.Marshal()})...), SignData{}},
		{"wrong message", bytes.Replace(bytes.Clone(login), []byte{msgUserAuthRequest, 0, 0, 0, 3, 'g'}, []byte{51, 0, 0, 0, 3, 'g'}, 1), SignData{}},
		{"password method", userauthMethod(sid, "password"), SignData{}},
		{"no signature flag", bytes.Replace(bytes.Clone(login), []byte("publickey\x01"), []byte("publickey\x00"), 1), SignData{}},
		{"empty session id", userauthData(nil, "git", user, nil), SignData{}},
		{"sshsig empty namespace", sshsigData(""), SignData{}},
		{"sshsig trailing", append(bytes.Clone(sig), 1), SignData{}},
		{"sshsig truncated", sig[:len(sig)-1], SignData{}},
		{"magic only", []byte(sshsigMagic), SignData{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ParseSignData(c.data)
			if got.Kind != c.want.Kind || got.User != c.want.User || got.Service != c.want.Service ||
				got.Method != c.want.Method || got.Algorithm != c.want.Algorithm || got.Namespace != c.want.Namespace ||
				got.HashAlg != c.want.HashAlg || !bytes.Equal(got.SessionID, c.want.SessionID) ||
				!bytes.Equal(got.Key, c.want.Key) || !bytes.Equal(got.HostKey, c.want.HostKey) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func userauthMethod(sid []byte, method string) []byte {
	return ssh.Marshal(struct {
		SID                   []byte
		Msg                   byte
		User, Service, Method string
		HasSig                bool
	}{sid, msgUserAuthRequest, "git", "ssh-connection", method, true})
}

// marshalSignData is the inverse of ParseSignData for the kinds it knows.
func marshalSignData(sd SignData, hash []byte) []byte {
	switch sd.Kind {
	case KindUserAuth:
		b := ssh.Marshal(struct {
			SID                   []byte
			Msg                   byte
			User, Service, Method string
			HasSig                bool
			Algo                  string
			Key                   []byte
		}{sd.SessionID, msgUserAuthRequest, sd.User, sd.Service, sd.Method, true, sd.Algorithm, sd.Key})
		if sd.Method == MethodHostbound {
			b = append(b, ssh.Marshal(struct{ H []byte }{sd.HostKey})...)
		}
		return b
	case KindSSHSig:
		return append([]byte(sshsigMagic), ssh.Marshal(struct {
			NS, Reserved, Hash string
			H                  []byte
		}{sd.Namespace, "", sd.HashAlg, hash})...)
	}
	return nil
}

func FuzzParseSignData(f *testing.F) {
	sid := bytes.Repeat([]byte{1}, 32)
	user := ssh.Marshal(struct{ T, K string }{"ssh-ed25519", string(bytes.Repeat([]byte{2}, 32))})
	host := ssh.Marshal(struct{ T, K string }{"ssh-ed25519", string(bytes.Repeat([]byte{3}, 32))})
	for _, seed := range [][]byte{
		nil,
		[]byte(sshsigMagic),
		marshalSignData(SignData{Kind: KindUserAuth, SessionID: sid, User: "git", Service: "ssh-connection", Method: MethodPublicKey, Algorithm: "ssh-ed25519", Key: user}, nil),
		marshalSignData(SignData{Kind: KindUserAuth, SessionID: sid, User: "root", Service: "ssh-connection", Method: MethodHostbound, Algorithm: "rsa-sha2-512", Key: user, HostKey: host}, nil),
		marshalSignData(SignData{Kind: KindSSHSig, Namespace: "git", HashAlg: "sha512"}, bytes.Repeat([]byte{4}, 64)),
		marshalSignData(SignData{Kind: KindSSHSig, Namespace: "file", HashAlg: "sha256"}, bytes.Repeat([]byte{5}, 32)),
		{0xff, 0xff, 0xff, 0xff, 50},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd := ParseSignData(data)
		switch sd.Kind {
		case KindUnknown:
			if sd.User != "" || sd.Namespace != "" || sd.SessionID != nil {
				t.Fatalf("unknown data with fields set: %+v", sd)
			}
		case KindUserAuth:
			// Exactly one userauth request, nothing left over.
			if got := marshalSignData(sd, nil); !bytes.Equal(got, data) {
				t.Fatalf("userauth does not re-encode to its input")
			}
			if sd.Method != MethodPublicKey && sd.Method != MethodHostbound {
				t.Fatalf("method %q", sd.Method)
			}
		case KindSSHSig:
			if sd.Namespace == "" || !bytes.HasPrefix(data, []byte(sshsigMagic)) {
				t.Fatalf("sshsig %+v", sd)
			}
			// The reserved field is ignored, as PROTOCOL.sshsig asks of a
			// verifier, so it is carried over as it came.
			r := reader{b: data[len(sshsigMagic):]}
			r.bytes()
			reserved := r.bytes()
			r.bytes()
			h := r.bytes()
			again := append([]byte(sshsigMagic), ssh.Marshal(struct {
				NS, Reserved, Hash string
				H                  []byte
			}{sd.Namespace, string(reserved), sd.HashAlg, h})...)
			if r.bad || len(r.b) != 0 || !bytes.Equal(again, data) {
				t.Fatalf("sshsig does not re-encode to its input")
			}
		default:
			t.Fatalf("kind %v", sd.Kind)
		}
		_ = keyDesc(data)
		_ = clean(string(data))
	})
}

func FuzzParseSessionBind(f *testing.F) {
	_, priv, _ := ed25519Key()
	s, _ := ssh.NewSignerFromKey(priv)
	sid := bytes.Repeat([]byte{9}, 32)
	sig, _ := s.Sign(nil, sid)
	good := ssh.Marshal(struct {
		HostKey, SID, Sig []byte
		Fwd               bool
	}{s.PublicKey().Marshal(), sid, ssh.Marshal(sig), false})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, contents []byte) {
		b, err := ParseSessionBind(contents)
		if err != nil {
			return
		}
		pub, err := ssh.ParsePublicKey(b.HostKey)
		if err != nil || len(b.SessionID) == 0 {
			t.Fatalf("accepted a binding with a bad host key or session id")
		}
		_ = pub
	})
}

// recorder is an agent that remembers what real OpenSSH programs ask it to
// sign and bind, so the parser is checked against them.
type recorder struct {
	agent.ExtendedAgent
	mu    sync.Mutex
	signs [][]byte
	binds [][]byte
}

func (r *recorder) SignWithFlags(k ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	r.mu.Lock()
	r.signs = append(r.signs, bytes.Clone(data))
	r.mu.Unlock()
	return r.ExtendedAgent.SignWithFlags(k, data, flags)
}

func (r *recorder) Sign(k ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return r.SignWithFlags(k, data, 0)
}

func (r *recorder) Extension(typ string, contents []byte) ([]byte, error) {
	if typ != bus.ExtSessionBind {
		return nil, agent.ErrExtensionUnsupported
	}
	r.mu.Lock()
	r.binds = append(r.binds, bytes.Clone(contents))
	r.mu.Unlock()
	return nil, nil
}

func serveRecorder(t *testing.T, r *recorder) string {
	t.Helper()
	sock := filepath.Join(sshkeystest.ShortDir(t), "rec.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(r, c)
			}()
		}
	}()
	return sock
}

// TestParseRealOpenSSH parses what OpenSSH's ssh (logging in to a real
// sshd) and ssh-keygen -Y sign hand their agent.
func TestParseRealOpenSSH(t *testing.T) {
	dir := t.TempDir()
	key := sshkeystest.NewKey(t, dir, "id_ed25519", "ed25519")
	rec := &recorder{ExtendedAgent: keyringWith(t, key.Path)}
	sock := serveRecorder(t, rec)
	env := append(os.Environ(), "SSH_AUTH_SOCK="+sock)

	// ssh-keygen -Y sign, as git commit -S does with gpg.format=ssh.
	msg := filepath.Join(dir, "msg")
	if err := os.WriteFile(msg, []byte("tree 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Tool(t, "ssh-keygen"), "-Y", "sign", "-n", "git", "-f", key.Path+".pub", msg)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
	}
	rec.mu.Lock()
	if len(rec.signs) != 1 {
		t.Fatalf("ssh-keygen asked for %d signatures", len(rec.signs))
	}
	sd := ParseSignData(rec.signs[0])
	rec.signs = nil
	rec.mu.Unlock()
	if sd.Kind != KindSSHSig || sd.Namespace != "git" || sd.HashAlg != "sha512" {
		t.Fatalf("ssh-keygen's sign data parsed as %+v", sd)
	}

	// ssh logging in to sshd: a session-bind, then a hostbound userauth.
	sshd := testenv.StartSSHD(t, key.Line+"\n")
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(sshd.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	me := u.Username
	cmd = exec.Command(testenv.Tool(t, "ssh"), "-F", "none", "-p", sshd.Port, "-o", "UserKnownHostsFile="+kh,
		"-o", "BatchMode=yes", "-l", me, "127.0.0.1", "true")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v: %s", err, out)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.signs) != 1 || len(rec.binds) != 1 {
		t.Fatalf("ssh asked for %d signatures and %d bindings", len(rec.signs), len(rec.binds))
	}
	sd = ParseSignData(rec.signs[0])
	hostPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshd.HostKeyPub))
	if err != nil {
		t.Fatal(err)
	}
	if sd.Kind != KindUserAuth || sd.User != me || sd.Service != "ssh-connection" || sd.Method != MethodHostbound ||
		!bytes.Equal(sd.Key, key.Pub.Marshal()) || !bytes.Equal(sd.HostKey, hostPub.Marshal()) {
		t.Fatalf("ssh's sign data parsed as %+v", sd)
	}
	b, err := ParseSessionBind(rec.binds[0])
	if err != nil {
		t.Fatalf("ssh's session-bind: %v", err)
	}
	if !bytes.Equal(b.HostKey, hostPub.Marshal()) || !bytes.Equal(b.SessionID, sd.SessionID) || b.Forwarding {
		t.Fatalf("session-bind %+v does not match the login", b)
	}
}

func ed25519Key() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv, nil
}
