package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/internal/shedfs"
	"github.com/spuff-dev/spuff/provisioning/state"
	"github.com/spuff-dev/spuff/test/testenv"
)

// noBootstrap fails the test if the Manager tries to bootstrap over ssh a
// shed whose provider serves the bus.
type noBootstrap struct{ t *testing.T }

func (b noBootstrap) Bootstrap(context.Context, state.Shed, func(string)) (string, error) {
	b.t.Error("the Manager bootstrapped a shed whose provider serves its bus")
	return "", fmt.Errorf("no sshd here")
}

type discardAudit struct{}

func (discardAudit) Audit(context.Context, provisioning.AuditLine) error { return nil }

// TestAShedIsALocalGuestTheManagerAttachesWithoutSSH: up through the real
// Manager on a real state.db makes a running spuff-guest whose bus answers
// hello at the reported unix:// URL, with no ssh bootstrap and none of the
// host's environment; stop ends the process and keeps the folder, start
// brings it back, down removes it.
func TestAShedIsALocalGuestTheManagerAttachesWithoutSSH(t *testing.T) {
	guest := testenv.GoBinary(t, "./guest/cmd/spuff-guest")
	bins := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bins, "linux-"+runtime.GOARCH), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(guest, filepath.Join(bins, "linux-"+runtime.GOARCH, "spuff-guest")); err != nil {
		t.Fatal(err)
	}
	home, err := os.MkdirTemp("", "sp") // short: unix socket paths are bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	t.Setenv("SPUFF_TEST_HOST_SECRET", "host-only")
	env := provisioning.Env{Home: home, Getenv: func(k string) string {
		return map[string]string{"SPUFF_GUEST_BIN_DIR": bins, BootDelayEnv: "300ms"}[k]
	}}
	pv, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	p := pv.(*Provider)
	t.Cleanup(func() { _ = p.Delete(context.Background(), "box") })
	db, err := state.Open(filepath.Join(home, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var steps []string
	m, err := provisioning.NewManager(provisioning.ManagerOptions{
		DB: db, Provider: func(string) (provisioning.Provider, error) { return p, nil },
		UserData:   func(context.Context, string, string) ([]byte, error) { return []byte("#cloud-config\n"), nil },
		Bootstrap:  noBootstrap{t},
		Audit:      discardAudit{},
		KnownHosts: filepath.Join(home, "known_hosts"),
		Events:     func(e provisioning.Event) { steps = append(steps, e.Step) },
		Poll:       50 * time.Millisecond, BootTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := m.Up(ctx, provisioning.UpRequest{Name: "box", Provider: Name, User: "dev"})
	if err != nil || s.State != state.Ready {
		t.Fatalf("up: %v, state %q; steps %v", err, s.State, steps)
	}
	if got := strings.Join(steps, "|"); !strings.Contains(got, "starting spuff-guest serve|booting|ready") || strings.Contains(got, "bootstrapping") {
		t.Fatalf("steps %q", got)
	}
	hello := func() error {
		mc, err := p.Get(ctx, "box")
		if err != nil {
			return err
		}
		if mc.State != provisioning.Running || mc.BusURL != "unix://"+filepath.Join(home, "sheds", "box", "run", "bus.sock") {
			return fmt.Errorf("machine %+v", mc)
		}
		rwc, err := bus.Dial(ctx, mc.BusURL, nil)
		if err != nil {
			return err
		}
		c := bus.NewConn(rwc, nil, bus.Options{})
		defer c.Close()
		var hr bus.HelloResponse
		return c.Call(ctx, bus.NSAgent, bus.OpHello, bus.HelloRequest{Version: bus.Version}, &hr)
	}
	if err := hello(); err != nil {
		t.Fatalf("the shed's bus: %v\n%s", err, lastLine(filepath.Join(p.Dir("box"), logFile)))
	}
	pid := p.pid("box")
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err == nil && strings.Contains(string(environ), "SPUFF_TEST_HOST_SECRET") {
		t.Fatal("the host's environment reached the shed's process")
	}

	if err := m.Stop(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	if mc, err := p.Get(ctx, "box"); err != nil || mc.State != provisioning.Stopped {
		t.Fatalf("after stop: %+v %v", mc, err)
	}
	if shedfs.Alive(pid, p.Dir("box")) {
		t.Fatalf("spuff-guest %d still runs after stop", pid)
	}
	if ls, _, err := m.List(ctx); err != nil || len(ls) != 1 || ls[0].State != state.Stopped || ls[0].Orphan != "" {
		t.Fatalf("list after stop: %+v %v", ls, err)
	}
	if err := m.Start(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	if err := hello(); err != nil {
		t.Fatalf("the shed's bus after start: %v", err)
	}
	if err := m.Down(ctx, "box", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Dir("box")); !os.IsNotExist(err) {
		t.Fatalf("down left the shed's folder: %v", err)
	}
	if ms, err := p.List(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("list after down: %+v %v", ms, err)
	}
}

// A guest that dies at once is reported stopped with what it last said,
// so the Manager fails the shed with a reason instead of waiting.
func TestAGuestThatDiesIsStoppedWithItsLastWords(t *testing.T) {
	bins := t.TempDir()
	dir := filepath.Join(bins, "linux-"+runtime.GOARCH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spuff-guest"), []byte("#!/bin/sh\necho 'serve: cannot listen' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	pv, err := New(provisioning.Env{Home: home, Getenv: func(k string) string {
		return map[string]string{"SPUFF_GUEST_BIN_DIR": bins}[k]
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := pv.Create(ctx, provisioning.CreateRequest{Name: "dies", Labels: provisioning.Labels("dies", "")}); err != nil {
		t.Fatal(err)
	}
	var mc provisioning.Machine
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if mc, err = pv.Get(ctx, "dies"); err == nil && mc.State == provisioning.Stopped {
			break
		}
	}
	if mc.State != provisioning.Stopped || !strings.Contains(mc.Status, "serve: cannot listen") {
		t.Fatalf("machine %+v (%v), want stopped with the guest's last line", mc, err)
	}
}
