package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/provisioning/qemu/qemutest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestIdleStopsAQEMUShed: `spuff up idler --idle-timeout 1m` makes a real
// QEMU shed (one TCG boot) and leaves it untouched. spuff-app, asking its
// idle clock over the bus every 2s (the test-only SPUFF_TEST_IDLE_EVERY)
// with a 20s notice, warns (an idle notice on /v1/events and an
// idle_notice audit line) and then stops it itself: an idle_stop line, the
// row stopped, no QEMU process left. spuff list shows the idle time left
// meanwhile. spuff down cleans up.
func TestIdleStopsAQEMUShed(t *testing.T) {
	qemutest.Require(t)
	t.Parallel()
	home := harness.ShortTempDir(t)
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyPath, _ := testenv.KeyPair(t, sshDir, "id_ed25519", "ed25519")
	agentSock := startAgent(t, home, keyPath)
	buildGuestBins(t, filepath.Join(home, "bin"))
	h := harness.Start(t, harness.Options{
		// The config's 2h timeout is what --idle-timeout overrides.
		Config: "provision: {provider: qemu, user: dev, idle_timeout: 2h, idle_notice: 20s}\nqemu: {cpus: 2, memory: 1GiB}\n",
		Env: map[string]string{"HOME": home, "SSH_AUTH_SOCK": agentSock, "SPUFF_GUEST_BIN_DIR": filepath.Join(home, "bin"),
			"XDG_CACHE_HOME": filepath.Dir(testenv.CacheDir()), "SPUFF_TEST_IDLE_EVERY": "2s"},
	})
	cli := testenv.GoBinary(t, "./app/cmd/spuff")
	// run gives stdout, and stderr too unless onlyStdout (JSON is on stdout;
	// provider notes go to stderr).
	run := func(timeout time.Duration, onlyStdout bool, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		stderr := io.Writer(&out)
		if onlyStdout {
			stderr = &errOut
		}
		err := runSpuff(h, cli, timeout, nil, &out, stderr, args...)
		return out.String(), err
	}
	spuff := func(timeout time.Duration, args ...string) (string, error) { return run(timeout, false, args...) }
	t.Cleanup(func() { _, _ = spuff(3*time.Minute, "down", "--force", "idler") })

	// The event stream is open before up: the notice may come soon after
	// ready, since the guest's clock runs from its start during bootstrap.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var idleEvents []api.Event
	opened := make(chan struct{})
	go func() {
		_ = control.NewClient(h.Socket).Events(ctx, func(e api.Event) error {
			switch {
			case e.Kind == api.EventOpen:
				close(opened)
			case e.Kind == api.EventIdle && e.Idle != nil:
				mu.Lock()
				idleEvents = append(idleEvents, e)
				mu.Unlock()
			}
			return nil
		})
	}()
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("no event stream")
	}

	out, err := spuff(12*time.Minute, "up", "idler", "--idle-timeout", "1m")
	t.Logf("spuff up idler:\n%s", out)
	if err != nil {
		t.Fatalf("spuff up: %v\n%s", err, h.Log())
	}
	ready := time.Now()
	h.WaitState(t, "idler", "connected")

	// spuff list: the shed's own timeout and the time left, exact in JSON.
	made := func() api.MadeShed {
		t.Helper()
		out, err := run(time.Minute, true, "list", "--json")
		var l []struct {
			Name string
			Made *api.MadeShed
		}
		if err != nil || json.Unmarshal([]byte(out), &l) != nil {
			t.Fatalf("spuff list --json: %v\n%s", err, out)
		}
		for _, e := range l {
			if e.Name == "idler" && e.Made != nil {
				return *e.Made
			}
		}
		t.Fatalf("spuff list --json has no made shed idler:\n%s", out)
		return api.MadeShed{}
	}
	var listed api.MadeShed
	for deadline := time.Now().Add(30 * time.Second); listed.IdleLeftSeconds == nil && time.Now().Before(deadline); time.Sleep(time.Second) {
		listed = made()
	}
	if listed.IdleTimeoutSeconds == nil || *listed.IdleTimeoutSeconds != 60 || listed.IdleLeftSeconds == nil || *listed.IdleLeftSeconds > 60 {
		t.Errorf("listed %+v, want a 60s timeout and at most 60s left", listed)
	}
	if table, err := spuff(time.Minute, "list"); err != nil || !strings.Contains(table, "IDLE LEFT") {
		t.Errorf("spuff list: %v\n%s", err, table)
	}

	provision := func(op string) []audit.Record {
		return h.FindAudit(t, func(r audit.Record) bool { return r.Shed == "idler" && r.NS == "provision" && r.Op == op })
	}
	var stopped []audit.Record
	for deadline := time.Now().Add(4 * time.Minute); len(stopped) == 0; time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the idle shed was not stopped within 4m of ready\n%s", h.Log())
		}
		stopped = provision("idle_stop")
	}
	t.Logf("stopped %s after ready: %+v", time.Since(ready).Round(time.Second), stopped[0])
	notices := provision("idle_notice")
	if len(notices) != 1 || notices[0].Result != "ok" || stopped[0].TS.Before(notices[0].TS) || stopped[0].Result != "ok" {
		t.Fatalf("notice lines %+v, stop line %+v", notices, stopped[0])
	}
	if gap := stopped[0].TS.Sub(notices[0].TS); gap < 18*time.Second {
		t.Errorf("stopped %s after the notice, want the 20s notice served", gap)
	}
	mu.Lock()
	var changes []string
	for _, e := range idleEvents {
		if e.Shed == "idler" {
			changes = append(changes, e.Idle.Change)
		}
	}
	mu.Unlock()
	if got := strings.Join(changes, " "); got != "notice stop" {
		t.Errorf("idle events %q, want a notice then the stop", got)
	}

	if m := made(); m.State != "stopped" || m.IdleLeftSeconds != nil {
		t.Errorf("after the idle stop: %+v", m)
	}
	if out, _ := exec.Command("pgrep", "-f", filepath.Join(h.Home, "sheds")).Output(); len(out) > 0 {
		t.Errorf("a QEMU process outlived the idle stop: %s", out)
	}
	if out, err := spuff(3*time.Minute, "down", "idler"); err != nil {
		t.Fatalf("spuff down: %v\n%s", err, out)
	}
}
