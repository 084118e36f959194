package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// sshHost is the developer's computer for the ssh tests: an OpenSSH
// ssh-agent holding three keys (laptop and rsa are allowlisted, work is
// not), a local sshd that serves a bare git repository, and spuff-app
// signing with that agent.
type sshHost struct {
	h                 *harness.Host
	agent             *sshkeystest.Agent
	laptop, rsa, work sshkeystest.Key
	sshd              *testenv.SSHD
	user              string
	repo              string // the bare repository, served over ssh
	keyFiles          []string
}

func startSSHHost(t *testing.T) *sshHost {
	t.Helper()
	return startSSHHostWith(t, "", nil)
}

// startSSHHostArgs is startSSHHostWith with extra spuff-app flags.
func startSSHHostArgs(t *testing.T, extraConfig string, args ...string) *sshHost {
	t.Helper()
	return startSSHHostWithArgs(t, extraConfig, nil, args)
}

// startSSHHostWith adds extraConfig (whole top-level YAML sections) to the
// host's config and env to spuff-app's environment.
func startSSHHostWith(t *testing.T, extraConfig string, env map[string]string) *sshHost {
	t.Helper()
	return startSSHHostWithArgs(t, extraConfig, env, nil)
}

func startSSHHostWithArgs(t *testing.T, extraConfig string, env map[string]string, args []string) *sshHost {
	t.Helper()
	return startSSHHostOpts(t, extraConfig, harness.Options{Env: env, Args: args})
}

// startSSHHostOpts starts the host with o's Env, Args and Tray; Config is
// the SSH one plus extraConfig.
func startSSHHostOpts(t *testing.T, extraConfig string, o harness.Options) *sshHost {
	t.Helper()
	env := o.Env
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir() // the host's keys live here, outside every shed
	s := &sshHost{user: u.Username}
	s.laptop = sshkeystest.NewKey(t, keys, "laptop", "ed25519")
	s.rsa = sshkeystest.NewKey(t, keys, "laptop_rsa", "rsa")
	s.work = sshkeystest.NewKey(t, keys, "work", "ed25519")
	s.keyFiles = []string{s.laptop.Path, s.rsa.Path, s.work.Path}
	s.agent = sshkeystest.StartAgent(t, s.laptop.Path, s.rsa.Path, s.work.Path)
	// sshd accepts every key, so that a refusal is spuff's doing.
	s.sshd = testenv.StartSSHD(t, s.laptop.Line+"\n"+s.rsa.Line+"\n"+s.work.Line+"\n")

	s.repo = filepath.Join(t.TempDir(), "repo.git")
	seed := t.TempDir()
	hostGit(t, "", "init", "-q", "--bare", "-b", "main", s.repo)
	hostGit(t, seed, "init", "-q", "-b", "main")
	hostGit(t, seed, "commit", "-q", "--allow-empty", "-m", "seed")
	hostGit(t, seed, "push", "-q", s.repo, "main")

	cfg := fmt.Sprintf(`ssh:
  mode: agent-forward
  keys: [%q, %q]
sheds:
  rsa-only:
    ssh:
      keys: [%q]
`, s.laptop.FP, s.rsa.FP, s.rsa.FP) + extraConfig
	o.Config = cfg
	o.Env = map[string]string{"SSH_AUTH_SOCK": s.agent.Sock}
	for k, v := range env {
		o.Env[k] = v
	}
	s.h = harness.Start(t, o)
	// The host's known_hosts names the server, as after a first ssh from the laptop.
	dotSSH := filepath.Join(s.h.Dir, ".ssh")
	if err := os.MkdirAll(dotSSH, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dotSSH, "known_hosts"), []byte(s.sshd.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

var gitEnv = []string{
	"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
	"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com",
	"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com",
}

// hostGit runs git on the host side (not through spuff).
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "git"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sshShed is a guest whose ssh knows the host's sshd and has no key files
// of its own: every signature must come through SSH_AUTH_SOCK.
type sshShed struct {
	s *sshHost
	g *harness.Guest
}

func (s *sshHost) shed(t *testing.T, name string) *sshShed {
	t.Helper()
	g := s.h.Guest(t, name)
	if err := os.WriteFile(filepath.Join(g.Dir, "known_hosts"), []byte(s.sshd.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &sshShed{s: s, g: g}
}

// sshOpts make ssh use the agent only; naming an IdentityFile that does
// not exist turns off ssh's default key files.
func (sh *sshShed) sshOpts() []string {
	return []string{"-F", "none", "-o", "UserKnownHostsFile=" + filepath.Join(sh.g.Dir, "known_hosts"),
		"-o", "BatchMode=yes", "-o", "IdentityFile=" + filepath.Join(sh.g.Dir, "no-key-here")}
}

// run runs a program in the shed's environment (SSH_AUTH_SOCK on its agent).
func (sh *sshShed) run(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Tool(t, name), args...)
	cmd.Dir = sh.g.Dir
	if dir != "" {
		cmd.Dir = dir
	}
	cmd.Env = append(sh.g.Env(), gitEnv...)
	cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND=ssh "+strings.Join(sh.sshOpts(), " "))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (sh *sshShed) ssh(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	args := append(sh.sshOpts(), extra...)
	args = append(args, "-p", sh.s.sshd.Port, "-l", sh.s.user, "127.0.0.1", "echo", "logged-in")
	return sh.run(t, "", "ssh", args...)
}

func (s *sshHost) url() string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%s%s", s.user, s.sshd.Port, s.repo)
}

func sshAudit(shed, op string) func(audit.Record) bool {
	return func(r audit.Record) bool { return r.Shed == shed && r.NS == "ssh-agent" && r.Op == op }
}

func TestSSHAgent(t *testing.T) {
	s := startSSHHost(t)
	alpha := s.shed(t, "alpha")
	rsaOnly := s.shed(t, "rsa-only")
	server := fmt.Sprintf("%s@[127.0.0.1]:%s", s.user, s.sshd.Port)
	laptopDesc := "ssh-ed25519 " + s.laptop.FP
	// A key someone tries to ssh-add into a shed's agent.
	fresh := sshkeystest.NewKey(t, t.TempDir(), "typed-in-the-shed", "ed25519")
	s.keyFiles = append(s.keyFiles, fresh.Path)

	t.Run("ssh-add -l lists exactly the allowlisted keys", func(t *testing.T) {
		for _, c := range []struct {
			sh   *sshShed
			want []sshkeystest.Key
		}{{alpha, []sshkeystest.Key{s.laptop, s.rsa}}, {rsaOnly, []sshkeystest.Key{s.rsa}}} {
			out, err := c.sh.run(t, "", "ssh-add", "-l")
			if err != nil {
				t.Fatalf("ssh-add -l in %s: %v: %s\nguest log:\n%s", c.sh.g.Name, err, out, c.sh.g.Log())
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != len(c.want) || strings.Contains(out, s.work.FP) {
				t.Fatalf("ssh-add -l in %s listed:\n%s", c.sh.g.Name, out)
			}
			for _, k := range c.want {
				if !strings.Contains(out, k.FP) {
					t.Fatalf("ssh-add -l in %s does not list %s:\n%s", c.sh.g.Name, k.FP, out)
				}
			}
		}
		recs := s.h.FindAudit(t, sshAudit("alpha", "list"))
		if len(recs) == 0 || recs[len(recs)-1].Result != "ok" || recs[len(recs)-1].Detail != "2 keys" {
			t.Fatalf("list audit: %+v", recs)
		}
	})

	t.Run("ssh to a local sshd", func(t *testing.T) {
		out, err := alpha.ssh(t)
		if err != nil || !strings.Contains(out, "logged-in") {
			t.Fatalf("ssh from alpha: %v: %s\nguest log:\n%s\nspuff-app log:\n%s", err, out, alpha.g.Log(), s.h.Log())
		}
		var login bool
		for _, r := range s.h.FindAudit(t, sshAudit("alpha", "sign")) {
			if r.Result == "ok" && strings.HasSuffix(r.Detail, " "+server) && r.Approval == "none" {
				login = true
			}
		}
		if !login {
			t.Fatalf("no ok sign audited as a login to %s: %+v", server, s.h.FindAudit(t, sshAudit("alpha", "sign")))
		}
	})

	clone := filepath.Join(alpha.g.Dir, "clone")
	t.Run("git clone and push over ssh", func(t *testing.T) {
		if out, err := alpha.run(t, "", "git", "clone", "-q", s.url(), clone); err != nil {
			t.Fatalf("git clone: %v: %s", err, out)
		}
		if out, err := alpha.run(t, clone, "git", "commit", "-q", "--allow-empty", "-m", "from the shed"); err != nil {
			t.Fatalf("git commit: %v: %s", err, out)
		}
		if out, err := alpha.run(t, clone, "git", "push", "-q", "origin", "main"); err != nil {
			t.Fatalf("git push: %v: %s", err, out)
		}
		if got := strings.TrimSpace(hostGit(t, "", "--git-dir", s.repo, "log", "-1", "--format=%s", "main")); got != "from the shed" {
			t.Fatalf("the bare repository's main is %q", got)
		}
	})

	t.Run("git commit -S with gpg.format=ssh verifies", func(t *testing.T) {
		if _, err := os.Stat(clone); err != nil {
			t.Skip("needs the clone")
		}
		allowed := filepath.Join(alpha.g.Dir, "allowed_signers")
		if err := os.WriteFile(allowed, []byte("dev@example.com "+s.laptop.Line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=key::" + s.laptop.Line, "-c", "gpg.ssh.allowedSignersFile=" + allowed}
		if out, err := alpha.run(t, clone, "git", append(cfg, "commit", "-q", "-S", "--allow-empty", "-m", "signed in the shed")...); err != nil {
			t.Fatalf("git commit -S: %v: %s\nguest log:\n%s", err, out, alpha.g.Log())
		}
		out, err := alpha.run(t, clone, "git", append(cfg, "verify-commit", "HEAD")...)
		if err != nil || !strings.Contains(out, `Good "git" signature for dev@example.com`) {
			t.Fatalf("git verify-commit: %v: %s", err, out)
		}
		if out, err := alpha.run(t, clone, "git", "push", "-q", "origin", "main"); err != nil {
			t.Fatalf("git push: %v: %s", err, out)
		}
		// The host verifies it too, from the pushed repository.
		hostGit(t, "", "--git-dir", s.repo, "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", "main")
		var sig bool
		for _, r := range s.h.FindAudit(t, sshAudit("alpha", "sign")) {
			if r.Result == "ok" && r.Detail == laptopDesc+" sshsig:git" {
				sig = true
			}
		}
		if !sig {
			t.Fatalf("no audit line %q", laptopDesc+" sshsig:git")
		}
	})

	t.Run("an RSA key signs with rsa-sha2-512", func(t *testing.T) {
		// The client accepts only rsa-sha2-512: an agent that dropped the
		// flag would hand back ssh-rsa and the login would fail.
		if out, err := rsaOnly.ssh(t, "-o", "PubkeyAcceptedAlgorithms=rsa-sha2-512"); err != nil || !strings.Contains(out, "logged-in") {
			t.Fatalf("ssh with the RSA key: %v: %s\nguest log:\n%s", err, out, rsaOnly.g.Log())
		}
		// An sshsig made with the RSA key carries an rsa-sha2-512 signature.
		msg := filepath.Join(rsaOnly.g.Dir, "msg")
		if err := os.WriteFile(msg, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		pub := filepath.Join(rsaOnly.g.Dir, "rsa.pub")
		if err := os.WriteFile(pub, []byte(s.rsa.Line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := rsaOnly.run(t, "", "ssh-keygen", "-Y", "sign", "-n", "file", "-f", pub, msg); err != nil {
			t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
		}
		if f := sshsigFormat(t, msg+".sig"); f != ssh.KeyAlgoRSASHA512 {
			t.Fatalf("sshsig signature format %q, want %s", f, ssh.KeyAlgoRSASHA512)
		}
	})

	t.Run("denials are audited", func(t *testing.T) {
		// A key outside the shed's allowlist.
		pub := filepath.Join(rsaOnly.g.Dir, "laptop.pub")
		if err := os.WriteFile(pub, []byte(s.laptop.Line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := rsaOnly.run(t, "", "ssh-add", "-T", pub); err == nil {
			t.Fatalf("rsa-only signed with the laptop key: %s", out)
		}
		var denied bool
		for _, r := range s.h.FindAudit(t, sshAudit("rsa-only", "sign")) {
			if r.Result == "denied" && r.Code == "NOT_ALLOWED" && strings.Contains(r.Detail, s.laptop.FP) {
				denied = true
			}
		}
		if !denied {
			t.Fatalf("no denied sign with %s audited for rsa-only: %+v", s.laptop.FP, s.h.FindAudit(t, sshAudit("rsa-only", "sign")))
		}
		// ssh-add of a key into the shed's agent.
		if out, err := alpha.run(t, "", "ssh-add", fresh.Path); err == nil {
			t.Fatalf("ssh-add into the shed's agent succeeded: %s", out)
		}
		recs := s.h.FindAudit(t, sshAudit("alpha", "add"))
		if len(recs) != 1 || recs[0].Result != "denied" || recs[0].Code != "NOT_ALLOWED" || !strings.Contains(recs[0].Detail, fresh.FP) {
			t.Fatalf("add audit: %+v", recs)
		}
		if !strings.Contains(alpha.g.Log(), "the spuff agent is read-only") {
			t.Fatalf("the guest log does not say the agent is read-only:\n%s", alpha.g.Log())
		}
		// The host agent is untouched.
		cmd := exec.Command(testenv.Tool(t, "ssh-add"), "-l")
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+s.agent.Sock)
		if out, err := cmd.Output(); err != nil || len(strings.Split(strings.TrimSpace(string(out)), "\n")) != 3 {
			t.Fatalf("the host agent changed: %v: %s", err, out)
		}
	})

	t.Run("a detached shed fails fast and says what to do", func(t *testing.T) {
		beta := s.shed(t, "beta")
		if out, err := beta.run(t, "", "ssh-add", "-l"); err != nil {
			t.Fatalf("ssh-add -l in beta: %v: %s", err, out)
		}
		okBefore := len(okSigns(s.h.FindAudit(t, sshAudit("beta", "sign"))))
		s.h.MustSpuff(t, "detach", "beta")
		pub := filepath.Join(beta.g.Dir, "laptop.pub")
		if err := os.WriteFile(pub, []byte(s.laptop.Line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			start := time.Now()
			out, err := beta.run(t, "", "ssh-add", "-T", pub)
			took := time.Since(start)
			if err != nil {
				if took > 3*time.Second {
					t.Fatalf("signing in a detached shed took %s to fail", took)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("beta still signs 10s after detach: %s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		start := time.Now()
		if out, err := beta.run(t, "", "git", "ls-remote", s.url()); err == nil {
			t.Fatalf("git ls-remote from a detached shed succeeded: %s", out)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("git over ssh from a detached shed took %s to fail", took)
		}
		if !strings.Contains(beta.g.Log(), "spuff is not running on your computer") {
			t.Fatalf("the guest log does not say what to do:\n%s", beta.g.Log())
		}
		if n := len(okSigns(s.h.FindAudit(t, sshAudit("beta", "sign")))); n != okBefore {
			t.Fatalf("%d signatures for beta after it was detached", n-okBefore)
		}
	})

	t.Run("no private key material in the sheds, their environment or logs", func(t *testing.T) {
		needles := privateNeedles(t, s.keyFiles)
		if len(needles) == 0 {
			t.Fatal("no needles to look for")
		}
		var secrets []harness.Secret
		for _, n := range needles {
			secrets = append(secrets, harness.Secret{What: "private key material", Value: n})
		}
		for _, sh := range []*sshShed{alpha, rsaOnly} {
			sh.g.AssertNoSecret(t, secrets)
		}
		// Nor on the host's side of the record.
		b, _ := os.ReadFile(s.h.AuditPath)
		hostHay := append(b, s.h.Log()...)
		if len(b) == 0 {
			t.Fatal("the audit log is empty")
		}
		for _, n := range needles {
			if bytes.Contains(hostHay, n) {
				t.Fatal("private key material is in the audit log or spuff-app's log")
			}
		}
	})
}

func okSigns(recs []audit.Record) []audit.Record {
	var out []audit.Record
	for _, r := range recs {
		if r.Result == "ok" {
			out = append(out, r)
		}
	}
	return out
}

// sshsigFormat returns the signature algorithm inside an armored SSHSIG file.
func sshsigFormat(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasPrefix(line, "-----") {
			body.WriteString(strings.TrimSpace(line))
		}
	}
	raw, err := base64.StdEncoding.DecodeString(body.String())
	if err != nil || !bytes.HasPrefix(raw, []byte("SSHSIG")) {
		t.Fatalf("%s is not an SSHSIG: %v", path, err)
	}
	var sig struct {
		Version                      uint32
		PublicKey                    []byte
		Namespace, Reserved, HashAlg string
		Signature                    []byte
	}
	if err := ssh.Unmarshal(raw[6:], &sig); err != nil {
		t.Fatal(err)
	}
	var inner ssh.Signature
	if err := ssh.Unmarshal(sig.Signature, &inner); err != nil {
		t.Fatal(err)
	}
	return inner.Format
}

// privateNeedles are byte strings only a private key holds: the lines of
// its file, its raw secret, and that secret in base64 (as JSON would carry it).
func privateNeedles(t *testing.T, files []string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				out = append(out, []byte(line))
			}
		}
		raw, err := ssh.ParseRawPrivateKey(b)
		if err != nil {
			t.Fatal(err)
		}
		var secret []byte
		switch k := raw.(type) {
		case *ed25519.PrivateKey:
			secret = k.Seed()
		case *rsa.PrivateKey:
			secret = k.D.Bytes()
		case *ecdsa.PrivateKey:
			secret, _ = k.Bytes()
		default:
			t.Fatalf("key type %T", raw)
		}
		out = append(out, secret, []byte(base64.StdEncoding.EncodeToString(secret)))
	}
	return out
}
