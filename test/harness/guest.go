package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/test/testenv"
)

// GuestOptions configure one shed process.
type GuestOptions struct {
	// Env adds to the guest's environment (the shed's environment).
	Env map[string]string
	// NoAttach starts the guest without attaching it to the host.
	NoAttach bool
	// Args are extra flags for spuff-guest serve.
	Args []string
}

// Guest is a running spuff-guest serve: one shed, as a process.
type Guest struct {
	Name    string
	Dir     string // the shed's scratch dir (its HOME)
	RunDir  string
	AWSAddr string // 127.0.0.1:PORT of the AWS endpoint
	env     []string
	args    []string
	proc    *testenv.Process
	h       *Host
}

// Guest starts a shed process and, unless NoAttach, attaches it over
// unix:// and waits until the broker reports it connected.
func (h *Host) Guest(t testing.TB, name string, opts ...GuestOptions) *Guest {
	t.Helper()
	var o GuestOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	dir := ShortTempDir(t)
	g := &Guest{Name: name, Dir: dir, RunDir: filepath.Join(dir, "run"), h: h}
	g.AWSAddr = testenv.FreeAddr(t)
	// DOCKER_CONFIG too: spuff-guest rewrites that config, never the
	// developer's own.
	env := map[string]string{"HOME": dir, "SSH_AUTH_SOCK": "", "DOCKER_CONFIG": filepath.Join(dir, ".docker")}
	for k, v := range o.Env {
		env[k] = v
	}
	g.env = mergeEnv(os.Environ(), env)
	g.args = append([]string{"serve", "--run-dir", g.RunDir, "--aws-listen", g.AWSAddr, "-v"}, o.Args...)
	g.start(t)
	t.Cleanup(func() { g.Stop(t) })
	if !o.NoAttach {
		h.MustSpuff(t, "attach", name, g.URL())
		h.WaitState(t, name, "connected")
	}
	return g
}

// URL is the address the host dials.
func (g *Guest) URL() string { return "unix://" + filepath.Join(g.RunDir, "bus.sock") }

func (g *Guest) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(g.h.bins.guest, g.args...)
	cmd.Env = g.env
	p, err := testenv.StartProcess("spuff-guest", cmd)
	if err != nil {
		t.Fatal(err)
	}
	g.proc = p
	if err := p.WaitReady(15*time.Second, testenv.Dialable("unix", filepath.Join(g.RunDir, "guest.sock"))); err != nil {
		t.Fatal(err)
	}
}

// Stop ends the guest process.
func (g *Guest) Stop(t testing.TB) {
	if g.proc == nil {
		return
	}
	g.proc.Stop()
}

// Restart stops and starts the guest process with the same run dir.
func (g *Guest) Restart(t testing.TB) {
	t.Helper()
	g.Stop(t)
	g.start(t)
}

// Log returns what spuff-guest printed so far.
func (g *Guest) Log() string { return g.proc.Log() }

// Env is the environment a program in the shed gets: the guest's own plus
// SSH_AUTH_SOCK, the AWS container-credentials variables and SPUFF_GUEST_SOCK.
func (g *Guest) Env() []string {
	tokenFile := filepath.Join(g.RunDir, "aws-token")
	set := map[string]string{
		"SSH_AUTH_SOCK":                          filepath.Join(g.RunDir, "ssh-agent.sock"),
		"SPUFF_GUEST_SOCK":                       filepath.Join(g.RunDir, "guest.sock"),
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     fmt.Sprintf("http://%s/credentials", g.AWSAddr),
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile,
	}
	if b, err := os.ReadFile(tokenFile); err == nil {
		set["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = string(b)
	}
	return mergeEnv(g.env, set)
}

// Command builds a command that runs inside this shed's environment.
func (g *Guest) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = g.Env()
	cmd.Dir = g.Dir
	return cmd
}

// RSS is spuff-guest's resident set size in bytes.
func (g *Guest) RSS() int64 { return g.proc.RSS() }
