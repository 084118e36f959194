package bootstrap

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/provisioning/sshconn"
	"github.com/spuff-dev/spuff/provisioning/state"
	"github.com/spuff-dev/spuff/test/testenv"
)

type fixture struct {
	sshd *testenv.SSHD
	b    *Bootstrapper
	shed state.Shed
	root string
	kh   string
}

func setup(t *testing.T) fixture {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the guest binaries are linux")
	}
	dir := t.TempDir()
	keyPath, pub := testenv.KeyPair(t, dir, "login", "ed25519")
	sshd := testenv.StartSSHD(t, pub+"\n")
	bin := filepath.Join(dir, "bin", "linux-"+runtime.GOARCH)
	build := exec.Command("go", "build", "-o", bin+"/", "github.com/spuff-dev/spuff/guest/cmd/spuff-guest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building spuff-guest: %v: %s", err, out)
	}
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(dir, "known_hosts")
	hostPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshd.HostKeyPub))
	if err != nil {
		t.Fatal(err)
	}
	if err := sshconn.Pin(kh, "spuff-demo", hostPub); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	b, err := New(Options{Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, KnownHosts: kh, BinDir: filepath.Join(dir, "bin"),
		InstallFlags: []string{"--root", root, "--no-enable"}, Sudo: "-", SSHTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getenv("USER")
	if me == "" {
		me = "root"
	}
	return fixture{sshd: sshd, b: b, root: root, kh: kh,
		shed: state.Shed{Name: "demo", User: me, SSHAddr: sshd.Addr, HostKeyAlias: "spuff-demo", HostKey: sshd.HostKeyPub}}
}

// Against a real sshd with the pinned host key: the binary arrives with its
// SHA-256 checked, install runs with the token on stdin only (it lands in
// guest.env, never in sshd's log or a progress line).
func TestBootstrapInstalls(t *testing.T) {
	f := setup(t)
	var steps []string
	arch, err := f.b.Bootstrap(context.Background(), f.shed, func(s string) { steps = append(steps, s) })
	if err != nil {
		t.Fatalf("bootstrap: %v\nsteps: %q\nsshd: %s", err, steps, f.sshd.Log())
	}
	if want, _ := exec.Command("uname", "-m").Output(); arch != strings.TrimSpace(string(want)) {
		t.Errorf("arch %q, want %q", arch, want)
	}
	all := strings.Join(steps, "\n")
	for _, want := range []string{"waiting for ssh", "logged in", "spuff-guest SHA-256 checked in the shed", "spuff-guest installed"} {
		if !strings.Contains(all, want) {
			t.Errorf("no progress step %q in %q", want, steps)
		}
	}
	if _, err := os.Stat(filepath.Join(f.root, "usr/local/bin/spuff-guest")); err != nil {
		t.Errorf("spuff-guest not installed: %v", err)
	}
	env, err := os.ReadFile(filepath.Join(f.root, "etc/spuff/guest.env"))
	if err != nil {
		t.Fatalf("no guest.env: %v", err)
	}
	var tok string
	for _, l := range strings.Split(string(env), "\n") {
		if _, v, ok := strings.Cut(l, "="); ok && len(v) == 64 {
			tok = v
		}
	}
	if tok == "" {
		t.Fatalf("no 64-hex token in guest.env")
	}
	if strings.Contains(all, tok) || strings.Contains(f.sshd.Log(), tok) {
		t.Error("the agent token appears in progress or sshd's log")
	}
	// The host keeps nothing of it: no file on the host side (known_hosts,
	// the binaries, anything written beside them) holds it; only the
	// shed's guest.env (under root) does.
	_ = filepath.WalkDir(filepath.Dir(f.kh), func(p string, d os.DirEntry, err error) error {
		if err != nil || p == f.root {
			return filepath.SkipDir
		}
		if b, rerr := os.ReadFile(p); !d.IsDir() && rerr == nil && strings.Contains(string(b), tok) {
			t.Errorf("the agent token is kept on the host in %s", p)
		}
		return nil
	})
	if out, _ := exec.Command("sh", "-c", "ls -d /tmp/spuff-guest.* 2>/dev/null").Output(); len(out) > 0 {
		t.Logf("left in /tmp (maybe another test's): %s", out)
	}
}

// A shed answering with a key other than the pinned one is refused at
// once, not waited on.
func TestBootstrapRefusesAnotherHostKey(t *testing.T) {
	f := setup(t)
	other := filepath.Join(t.TempDir(), "other")
	_, pub := testenv.KeyPair(t, filepath.Dir(other), "other", "ed25519")
	k, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(pub))
	if err := sshconn.Pin(f.kh, "spuff-demo", k); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := f.b.Bootstrap(context.Background(), f.shed, nil)
	if err == nil || !strings.Contains(err.Error(), "host key is refused") {
		t.Fatalf("bootstrap with a changed host key: %v", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Error("a refused host key was retried until the timeout")
	}
	if _, err := os.Stat(filepath.Join(f.root, "usr/local/bin/spuff-guest")); err == nil {
		t.Error("installed through a refused host key")
	}
}

// A cloud-init that ends in error fails the bootstrap with cloud-init's
// own words (seen failing: the reason was empty while the same lines
// reached progress, as Stdout and Stderr shared one bytes.Buffer).
func TestCloudInitErrorReason(t *testing.T) {
	f := setup(t)
	c, err := f.b.dial(context.Background(), f.shed, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := cloudInitCmd
	t.Cleanup(func() { cloudInitCmd = old })
	cloudInitCmd = "printf '....\\nstatus: error\\ndetail:\\n(scripts-user, Runparts: 1 failures)\\n'; exit 1"
	var steps []string
	err = cloudInit(c, func(s string) { steps = append(steps, s) })
	if err == nil || !strings.Contains(err.Error(), `status: error\ndetail:\n(scripts-user, Runparts: 1 failures)`) {
		t.Fatalf("cloud-init error: %v", err)
	}
	if !strings.Contains(strings.Join(steps, "|"), "cloud-init: status: error") {
		t.Errorf("progress: %q", steps)
	}
}

// With InstallEarly the install runs while cloud-init still works, and
// without it only after: a cloud-init that waits for the installed
// guest.env ends well in the first case and times out in the second.
// Either way the bootstrap ends only once cloud-init has.
func TestInstallEarlyOverlapsCloudInit(t *testing.T) {
	for _, early := range []bool{true, false} {
		t.Run(fmt.Sprint("early=", early), func(t *testing.T) {
			f := setup(t)
			f.b.o.InstallEarly = early
			old := cloudInitCmd
			t.Cleanup(func() { cloudInitCmd = old })
			env := filepath.Join(f.root, "etc/spuff/guest.env")
			cloudInitCmd = "i=0; while [ ! -e " + env + " ]; do i=$((i+1)); [ $i -lt 100 ] || { echo 'status: error'; exit 1; }; sleep 0.1; done; sleep 0.5; echo 'status: done'"
			var mu sync.Mutex
			var steps []string
			_, err := f.b.Bootstrap(context.Background(), f.shed, func(s string) { mu.Lock(); steps = append(steps, s); mu.Unlock() })
			if early {
				if err != nil {
					t.Fatalf("bootstrap: %v\nsteps: %q", err, steps)
				}
				if last := steps[len(steps)-1]; last != "cloud-init: status: done" {
					t.Errorf("the last step is %q: the bootstrap did not wait for cloud-init", last)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "status: error") {
				t.Fatalf("bootstrap = %v, want cloud-init's timeout: the install ran before cloud-init ended", err)
			}
			if _, err := os.Stat(env); err == nil {
				t.Error("installed after cloud-init failed")
			}
		})
	}
}
