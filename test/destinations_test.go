package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestSSHDestinations: shed "fenced" may sign in only to allowed.example.
// Two sshd on loopback with their own host keys; the host's known_hosts
// names one allowed.example and the other other.example, and the shed's
// ssh reaches them under those names (HostKeyAlias), so every name spuff
// audits comes from the host's file.
func TestSSHDestinations(t *testing.T) {
	s := startSSHHostWith(t, "  fenced:\n    ssh:\n      destinations: [allowed.example]\n", nil)
	other := testenv.StartSSHD(t, s.laptop.Line+"\n"+s.rsa.Line+"\n")
	hostKH := "allowed.example " + s.sshd.HostKeyPub + "\nother.example " + other.HostKeyPub + "\n"
	if err := os.WriteFile(filepath.Join(s.h.Dir, ".ssh", "known_hosts"), []byte(hostKH), 0o600); err != nil {
		t.Fatal(err)
	}
	sh := s.shed(t, "fenced")
	if err := os.WriteFile(filepath.Join(sh.g.Dir, "known_hosts"), []byte(hostKH), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(sh.g.Dir, "ssh_config")
	conf := fmt.Sprintf(`Host allowed.example
  HostName 127.0.0.1
  Port %s
  HostKeyAlias allowed.example
Host other.example
  HostName 127.0.0.1
  Port %s
  HostKeyAlias other.example
Host *
  User %s
  UserKnownHostsFile %s
  BatchMode yes
  IdentityFile %s
`, s.sshd.Port, other.Port, s.user, filepath.Join(sh.g.Dir, "known_hosts"), filepath.Join(sh.g.Dir, "no-key-here"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sshCmd := "ssh -F " + cfg
	run := func(t *testing.T, dir, name string, args ...string) (string, error) {
		t.Helper()
		return sh.run(t, dir, "env", append([]string{"GIT_SSH_COMMAND=" + sshCmd, testenv.Tool(t, name)}, args...)...)
	}
	logins := func(result, suffix string) []audit.Record {
		var out []audit.Record
		for _, r := range s.h.FindAudit(t, sshAudit("fenced", "sign")) {
			if r.Result == result && strings.HasSuffix(r.Detail, suffix) {
				out = append(out, r)
			}
		}
		return out
	}
	refusedOther := "@other.example refused: not allowed other.example"

	t.Run("ssh to the allowed server", func(t *testing.T) {
		out, err := run(t, "", "ssh", "-F", cfg, "allowed.example", "echo", "logged-in")
		if err != nil || !strings.Contains(out, "logged-in") {
			t.Fatalf("ssh allowed.example: %v: %s\nguest log:\n%s", err, out, sh.g.Log())
		}
		if len(logins("ok", "@allowed.example")) == 0 {
			t.Fatalf("no ok login to allowed.example audited: %+v", s.h.FindAudit(t, sshAudit("fenced", "sign")))
		}
	})
	t.Run("ssh to the other server is refused", func(t *testing.T) {
		out, err := run(t, "", "ssh", "-F", cfg, "other.example", "echo", "logged-in")
		if err == nil || strings.Contains(out, "logged-in") {
			t.Fatalf("ssh other.example logged in: %s", out)
		}
		if len(logins("denied", refusedOther)) == 0 {
			t.Fatalf("no refusal naming other.example audited: %+v", s.h.FindAudit(t, sshAudit("fenced", "sign")))
		}
	})
	clone := filepath.Join(sh.g.Dir, "clone")
	t.Run("git clone from the allowed server, not from the other", func(t *testing.T) {
		if out, err := run(t, "", "git", "clone", "-q", "allowed.example:"+s.repo, clone); err != nil {
			t.Fatalf("git clone allowed.example: %v: %s", err, out)
		}
		before := len(logins("denied", refusedOther))
		if out, err := run(t, "", "git", "clone", "-q", "other.example:"+s.repo, filepath.Join(sh.g.Dir, "clone2")); err == nil {
			t.Fatalf("git clone other.example worked: %s", out)
		}
		if len(logins("denied", refusedOther)) <= before {
			t.Fatal("the refused clone has no audit line naming other.example")
		}
	})
	t.Run("ProxyJump through the allowed server to the other fails at the other", func(t *testing.T) {
		okBefore, deniedBefore := len(logins("ok", "@allowed.example")), len(logins("denied", refusedOther))
		out, err := run(t, "", "ssh", "-F", cfg, "-J", "allowed.example", "other.example", "echo", "logged-in")
		if err == nil || strings.Contains(out, "logged-in") {
			t.Fatalf("ssh -J allowed.example other.example logged in: %s", out)
		}
		if len(logins("ok", "@allowed.example")) <= okBefore {
			t.Fatalf("the jump hop did not sign in to allowed.example: %s", out)
		}
		if len(logins("denied", refusedOther)) <= deniedBefore {
			t.Fatalf("the refused hop has no audit line naming other.example: %s", out)
		}
	})
	t.Run("git commit signing still works", func(t *testing.T) {
		if _, err := os.Stat(clone); err != nil {
			t.Skip("needs the clone")
		}
		allowed := filepath.Join(sh.g.Dir, "allowed_signers")
		if err := os.WriteFile(allowed, []byte("dev@example.com "+s.laptop.Line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		gc := []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=key::" + s.laptop.Line, "-c", "gpg.ssh.allowedSignersFile=" + allowed}
		if out, err := run(t, clone, "git", append(gc, "commit", "-q", "-S", "--allow-empty", "-m", "signed in a fenced shed")...); err != nil {
			t.Fatalf("git commit -S: %v: %s", err, out)
		}
		if out, err := run(t, clone, "git", append(gc, "verify-commit", "HEAD")...); err != nil || !strings.Contains(out, `Good "git" signature`) {
			t.Fatalf("git verify-commit: %v: %s", err, out)
		}
	})
}

// TestDoctorDestinations: spuff doctor warns about a destination pattern
// that names no server in the host's known_hosts, and only about that one.
func TestDoctorDestinations(t *testing.T) {
	home := harness.ShortTempDir(t)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, pub := testenv.KeyPair(t, t.TempDir(), "host", "ed25519")
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte("git.corp.example "+pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := harness.Start(t, harness.Options{
		Config: "ssh:\n  mode: local-keys\n  destinations: ['*.corp.example']\nsheds:\n  fenced:\n    ssh:\n      destinations: [nowhere.example]\n",
		Env:    map[string]string{"HOME": home},
	})
	out, err := h.Spuff(t, "doctor")
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	if !strings.Contains(out, `sheds.fenced.ssh.destinations "nowhere.example" matches no server in ~/.ssh/known_hosts`) {
		t.Fatalf("doctor does not warn about nowhere.example:\n%s", out)
	}
	if strings.Contains(out, `"*.corp.example" matches no server`) {
		t.Fatalf("doctor warns about a pattern known_hosts matches:\n%s", out)
	}
}
