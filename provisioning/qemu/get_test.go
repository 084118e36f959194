package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/provisioning"
)

// Get tells a stopped shed from a dead one without booting anything: a
// pidfile whose process is gone is what a QEMU killed by hand (or crashed)
// leaves; a clean exit removes it, and so in effect does a restart of the
// host.
func TestGetReportsAKilledQEMUAsFailed(t *testing.T) {
	p, err := newProvider(provisioning.Env{Home: t.TempDir(), Cache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := p.Dir("demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeMeta(dir, meta{Name: "demo", Labels: provisioning.Labels("demo", ""), Port: 2222, Accel: "tcg"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if m, err := p.Get(ctx, "demo"); err != nil || m.State != provisioning.Stopped {
		t.Fatalf("no pidfile (a clean exit): %+v, %v; want stopped", m, err)
	}
	// A process that has ended, its pid left in the pidfile.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := p.Get(ctx, "demo")
	if err != nil || m.State != provisioning.Failed || m.SSHAddr != "" {
		t.Fatalf("a pidfile without its process (QEMU killed): %+v, %v; want failed", m, err)
	}
	// The same pidfile from before the host's last boot: the restart
	// stopped the shed, nothing crashed, and the pid names nothing of ours.
	longAgo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, pidFile), longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	m, err = p.Get(ctx, "demo")
	if err != nil || m.State != provisioning.Stopped || !strings.Contains(m.Status, "restarted") {
		t.Fatalf("a pidfile from before the boot: %+v, %v; want stopped, saying the computer restarted", m, err)
	}
	// A live process that is not this shed's QEMU (a reused pid) is no
	// running shed either.
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := p.Get(ctx, "demo"); err != nil || m.State != provisioning.Failed {
		t.Fatalf("a pidfile naming another process: %+v, %v; want failed", m, err)
	}
	ms, err := p.List(ctx)
	if err != nil || len(ms) != 1 || ms[0].State != provisioning.Failed {
		t.Fatalf("List = %+v, %v", ms, err)
	}
}
