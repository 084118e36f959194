package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/harness"
)

// TestSecondAppLeavesTheFirstAlone: a second spuff-app started with the
// same home (a login item and a click, say) exits at once, naming the one
// running, before it touches anything the first one owns: it dials no shed
// (a shed serves whichever host dialed it last, so that would take the
// shed's requests away and leave it unserved when the second exits), and
// rewrites no file the first one appends to (the replay fence).
func TestSecondAppLeavesTheFirstAlone(t *testing.T) {
	keys := harness.ShortTempDir(t)
	key := sshkeystest.NewKey(t, keys, "single", "ed25519")
	ag := sshkeystest.StartAgent(t, key.Path)
	h := harness.Start(t, harness.Options{Config: "ssh:\n  mode: agent-forward\n", Env: map[string]string{"SSH_AUTH_SOCK": ag.Sock}})
	g := h.Guest(t, "box")
	if _, err := signLoop(g.RunDir+"/ssh-agent.sock", 3); err != nil {
		t.Fatalf("signing before: %v", err)
	}
	fence := filepath.Join(h.Home, "replay-fence")
	before := stat(t, fence)

	out, err := h.Another(t)
	if err == nil {
		t.Fatalf("a second spuff-app with the same home kept running or exited 0:\n%s", out)
	}
	if !strings.Contains(out, "another spuff-app (pid "+strconv.Itoa(h.PID())+") is running") {
		t.Errorf("the second spuff-app does not say which one runs:\n%s", out)
	}
	if strings.Contains(out, "shed attached") {
		t.Errorf("the second spuff-app attached a shed before it stopped:\n%s", out)
	}
	if n := strings.Count(g.Log(), "host connected"); n != 1 {
		t.Errorf("the shed saw %d host connections, want the first spuff-app's alone:\n%s", n, g.Log())
	}
	if !os.SameFile(before, stat(t, fence)) {
		t.Error("the second spuff-app replaced the replay fence the first one appends to")
	}
	if _, err := signLoop(g.RunDir+"/ssh-agent.sock", 3); err != nil {
		t.Errorf("signing after the second spuff-app exited: %v\nguest:\n%s", err, g.Log())
	}
}

func stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
