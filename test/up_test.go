package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/provisioning/qemu/qemutest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestUpSSHDown: `spuff up demo` makes a real QEMU shed (one TCG boot),
// bootstraps it and attaches it; through `spuff ssh demo` the shed's agent
// lists the host's key; `spuff down demo` leaves no QEMU process, no
// ~/.spuff/sheds/demo and no state row.
func TestUpSSHDown(t *testing.T) {
	qemutest.Require(t)
	home := harness.ShortTempDir(t)
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyPath, pub := testenv.KeyPair(t, sshDir, "id_ed25519", "ed25519")
	// One agent holds the host's key: spuff-app signs and logs in with it,
	// and the real ssh of `spuff ssh` logs in with it too.
	agentSock := filepath.Join(home, "agent.sock")
	agent := exec.Command(testenv.Tool(t, "ssh-agent"), "-D", "-a", agentSock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(agentSock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	add := exec.Command(testenv.Tool(t, "ssh-add"), keyPath)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+agentSock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	bin := filepath.Join(home, "bin", "linux-amd64")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin+"/", "./guest/cmd/spuff-guest", "./guest/cmd/docker-credential-spuff")
	build.Dir, build.Env = testenv.RepoRoot(), append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v: %s", err, out)
	}
	h := harness.Start(t, harness.Options{
		Config: "provision: {provider: qemu, user: dev}\nqemu: {cpus: 2, memory: 1GiB}\n",
		Env: map[string]string{"HOME": home, "SSH_AUTH_SOCK": agentSock, "SPUFF_GUEST_BIN_DIR": filepath.Join(home, "bin"),
			"XDG_CACHE_HOME": filepath.Dir(testenv.CacheDir())},
	})
	cli := testenv.GoBinary(t, "./app/cmd/spuff")
	spuff := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, append([]string{"--socket", h.Socket}, args...)...)
		cmd.Env = h.Env()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	down := func() { _, _ = spuff(3*time.Minute, "down", "--force", "demo") }
	t.Cleanup(down)
	out, err := spuff(12*time.Minute, "up", "demo")
	t.Logf("spuff up demo:\n%s", out)
	if err != nil {
		t.Fatalf("spuff up: %v\n%s", err, h.Log())
	}
	for _, want := range []string{"creating", "booting", "bootstrapping", "ready", "s] "} {
		if !strings.Contains(out, want) {
			t.Errorf("up's progress lacks %q", want)
		}
	}
	h.WaitState(t, "demo", "connected")
	// A command over ssh gets no login shell, so the agent socket that
	// profile.d exports is named here.
	out, err = spuff(2*time.Minute, "ssh", "demo", "--", "SSH_AUTH_SOCK=/run/spuff/ssh-agent.sock", "ssh-add", "-L")
	if err != nil || !strings.Contains(out, strings.Fields(pub)[1]) {
		t.Fatalf("ssh-add -L in the shed: %v\n%s", err, out)
	}
	list, err := spuff(time.Minute, "list")
	if err != nil || !strings.Contains(list, "qemu") || !strings.Contains(list, "ready") {
		t.Errorf("spuff list: %v\n%s", err, list)
	}
	if out, err := spuff(3*time.Minute, "down", "demo"); err != nil {
		t.Fatalf("spuff down: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(h.Home, "sheds", "demo")); !os.IsNotExist(err) {
		t.Errorf("~/.spuff/sheds/demo after down: %v", err)
	}
	if out, _ := exec.Command("pgrep", "-f", filepath.Join(h.Home, "sheds")).Output(); len(out) > 0 {
		t.Errorf("a QEMU process outlived down: %s", out)
	}
	if list, _ := spuff(time.Minute, "list"); strings.Contains(list, "demo") {
		t.Errorf("demo still listed after down:\n%s", list)
	}
}
