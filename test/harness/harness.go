// Package harness runs spuff as its users do, for end-to-end tests: the
// broker (spuff-app --headless) and guests (spuff-guest serve) as separate
// processes, each with its own home and run directory, driven through the
// real spuff CLI.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/test/testenv"
)

// Options configure the host side.
type Options struct {
	// Config is the YAML of ~/.spuff/config.yaml (may be empty).
	Config string
	// Env adds to (or overrides) spuff-app's environment. HOME defaults to a
	// fresh directory, so the host's real ~/.ssh, ~/.aws and ~/.docker stay out.
	Env map[string]string
	// Args are extra spuff-app flags.
	Args []string
	// Tray runs spuff-app with its menu-bar tray instead of --headless; it
	// needs DBUS_SESSION_BUS_ADDRESS in Env.
	Tray bool
	// AppBinary runs this spuff-app instead of the test build (a release
	// build, for the memory figures).
	AppBinary string
	// GuestBinary runs this spuff-guest for every Guest instead of the
	// test build.
	GuestBinary string
}

// Host is a running spuff-app.
type Host struct {
	Dir       string // scratch root; HOME unless Env overrides it
	Home      string // SPUFF_HOME
	Socket    string
	AuditPath string
	env       []string
	args      []string
	proc      *testenv.Process
	bins      bins
}

type bins struct{ app, cli, guest string }

// TestProviderTag builds spuff-app with the process provider
// (provisioning/process), whose sheds are local spuff-guest processes.
const TestProviderTag = "spuff_testprovider"

// Binaries builds spuff-app (with TestProviderTag), spuff and spuff-guest
// (once per test process).
func binaries(t testing.TB) bins {
	// spuff-app runs its cloud providers in spuff-cloud beside it.
	testenv.GoBinary(t, "./app/cmd/spuff-cloud")
	return bins{
		app:   testenv.GoBinaryTags(t, "./app/cmd/spuff-app", TestProviderTag),
		cli:   testenv.GoBinary(t, "./app/cmd/spuff"),
		guest: testenv.GoBinary(t, "./guest/cmd/spuff-guest"),
	}
}

// ShortTempDir returns a temporary directory short enough for unix socket
// paths (108 bytes), removed at the end of the test.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Start runs spuff-app (--headless unless opts.Tray) and waits until its control socket answers.
func Start(t testing.TB, opts Options) *Host {
	t.Helper()
	dir := ShortTempDir(t)
	h := &Host{
		Dir:       dir,
		Home:      filepath.Join(dir, ".spuff"),
		AuditPath: filepath.Join(dir, "data", "shed", "extensions-audit.log"),
		bins:      binaries(t),
	}
	if opts.AppBinary != "" {
		h.bins.app = opts.AppBinary
	}
	if opts.GuestBinary != "" {
		h.bins.guest = opts.GuestBinary
	}
	h.Socket = filepath.Join(h.Home, "run", "spuff.sock")
	if err := os.MkdirAll(h.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Home, "config.yaml"), []byte(opts.Config), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"HOME":          dir,
		"SPUFF_HOME":    h.Home,
		"XDG_DATA_HOME": filepath.Join(dir, "data"),
		// Start-at-login entries go here, not into the real ~/.config.
		"XDG_CONFIG_HOME": filepath.Join(dir, ".config"),
		"SSH_AUTH_SOCK":   "",
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	h.env = mergeEnv(os.Environ(), env)
	h.args = append([]string{"--debug"}, opts.Args...)
	if !opts.Tray {
		h.args = append([]string{"--headless"}, h.args...)
	}
	h.start(t)
	t.Cleanup(func() { h.Stop(t) })
	return h
}

func (h *Host) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(h.bins.app, h.args...)
	cmd.Env = h.env
	p, err := testenv.StartProcess("spuff-app", cmd)
	if err != nil {
		t.Fatal(err)
	}
	h.proc = p
	if err := p.WaitReady(15*time.Second, testenv.Dialable("unix", h.Socket)); err != nil {
		t.Fatal(err)
	}
}

// Stop ends spuff-app (SIGTERM, then SIGKILL).
func (h *Host) Stop(t testing.TB) {
	if h.proc == nil {
		return
	}
	h.proc.Stop()
}

// Kill ends spuff-app with SIGKILL, as a crash would.
func (h *Host) Kill(t testing.TB) {
	if h.proc != nil {
		h.proc.Kill()
	}
}

// Restart stops and starts spuff-app with the same home; it reattaches the
// sheds it remembers.
func (h *Host) Restart(t testing.TB) {
	t.Helper()
	h.Stop(t)
	h.start(t)
}

// Another runs a second spuff-app with this one's home and flags until it
// exits (30 s at most) and returns what it printed.
func (h *Host) Another(t testing.TB) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bins.app, h.args...)
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// PID is spuff-app's process id.
func (h *Host) PID() int { return h.proc.PID() }

// Exited is closed once spuff-app has ended.
func (h *Host) Exited() <-chan struct{} { return h.proc.Exited() }

// Log returns what spuff-app printed so far.
func (h *Host) Log() string { return h.proc.Log() }

// LogShows waits up to 10 s for spuff-app's log to contain s: a line it
// wrote before answering may still be in the pipe when the answer arrives.
func (h *Host) LogShows(s string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(h.Log(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Env is spuff-app's environment.
func (h *Host) Env() []string { return append([]string(nil), h.env...) }

// Spuff runs the spuff CLI against this host and returns its stdout; a
// non-zero exit is an error carrying stderr.
func (h *Host) Spuff(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bins.cli, append([]string{"--socket", h.Socket}, args...)...)
	cmd.Env = h.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("spuff %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// MustSpuff is Spuff that fails the test on error.
func (h *Host) MustSpuff(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Spuff(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Audit reads every audit record written so far.
func (h *Host) Audit(t testing.TB) []audit.Record {
	t.Helper()
	f, err := os.Open(h.AuditPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit log has a bad line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// FindAudit returns the records matching pred.
func (h *Host) FindAudit(t testing.TB, pred func(audit.Record) bool) []audit.Record {
	t.Helper()
	var out []audit.Record
	for _, r := range h.Audit(t) {
		if pred(r) {
			out = append(out, r)
		}
	}
	return out
}

// WaitState waits until shed name reports state (connected, disconnected…).
func (h *Host) WaitState(t testing.TB, name, state string) {
	t.Helper()
	// An ssh:// attempt may take its whole dial timeout (15s) under load
	// and then be retried, so the wait allows several attempts.
	const wait = 90 * time.Second
	deadline := time.Now().Add(wait)
	var last string
	for time.Now().Before(deadline) {
		out, err := h.Spuff(t, "list", "--json")
		if err == nil {
			var sheds []struct{ Name, State, LastError string }
			if json.Unmarshal([]byte(out), &sheds) == nil {
				for _, s := range sheds {
					if s.Name == name {
						last = s.State + " " + s.LastError
						if s.State == state {
							return
						}
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("shed %s did not become %s within %s (last: %s)\nspuff-app log:\n%s", name, state, wait, last, h.Log())
}

func mergeEnv(base []string, set map[string]string) []string {
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range set {
		if v == "" && k == "SSH_AUTH_SOCK" {
			continue // unset
		}
		out = append(out, k+"="+v)
	}
	return out
}

// RSS is spuff-app's resident set size in bytes.
func (h *Host) RSS() int64 { return h.proc.RSS() }

// RSSParts is spuff-app's RSS split into anonymous and file-backed bytes.
func (h *Host) RSSParts() (anon, file int64) { return h.proc.RSSParts() }
