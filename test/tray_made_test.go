package test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/test/testenv"
)

// processSheds returns spuff-app's environment for making process sheds
// (provisioning/process, in test builds): its spuff-guest, and a boot
// that lasts long enough to be watched.
func processSheds(t *testing.T, bootDelay string) map[string]string {
	t.Helper()
	bins := t.TempDir()
	dir := filepath.Join(bins, "linux-"+runtime.GOARCH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testenv.GoBinary(t, "./guest/cmd/spuff-guest"), filepath.Join(dir, "spuff-guest")); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"SPUFF_GUEST_BIN_DIR": bins, "SPUFF_PROCESS_BOOT_DELAY": bootDelay}
}

// watchUntil reads the menu every few milliseconds until done matches,
// and returns every distinct label matching seen on the way.
func (c *trayClient) watchUntil(what string, seen, done func(menuEntry) bool) []string {
	c.t.Helper()
	var labels []string
	deadline := time.Now().Add(30 * time.Second)
	var last menuEntry
	for time.Now().Before(deadline) {
		l, err := c.layout()
		if err == nil {
			last = l
			for _, e := range l.Children {
				if seen(e) && (len(labels) == 0 || labels[len(labels)-1] != e.Label) {
					labels = append(labels, e.Label)
				}
			}
			if _, ok := l.find(done); ok {
				return labels
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("the tray menu never showed %s (saw %q); it shows:\n%s", what, labels, last)
	return nil
}

// under waits for the entry labelled prefix with a child labelled child,
// and returns that child.
func (c *trayClient) under(prefix, child string) menuEntry {
	c.t.Helper()
	e := c.waitFor(child+" under "+prefix, func(e menuEntry) bool {
		_, ok := e.find(labelled(child))
		return strings.HasPrefix(e.Label, prefix) && ok
	})
	ch, _ := e.find(labelled(child))
	return ch
}

func (n *noteServer) waitFor(t *testing.T, summary string) posted {
	t.Helper()
	return n.waitMatch(t, 30*time.Second, fmt.Sprintf("%q", summary), func(s string) bool { return s == summary })
}

// waitMatch returns the first notification whose summary matches, failing t
// (naming what it waited for and the others posted) after within.
func (n *noteServer) waitMatch(t *testing.T, within time.Duration, what string, match func(summary string) bool) posted {
	t.Helper()
	deadline := time.After(within)
	var others []posted
	for {
		select {
		case p := <-n.posted:
			if match(p.Summary) {
				return p
			}
			others = append(others, p)
		case <-deadline:
			t.Fatalf("no notification %s (others: %+v)", what, others)
		}
	}
}

// TestTrayMakesStopsStartsAndDestroysAShed: the menu's New shed makes a
// shed with the default provider (a process shed here) and a fresh name;
// the menu shows it ◐ with its steps, then ● ready, and the desktop gets a
// "ready" notification; Stop shows it ○ stopped, Start brings it back
// through ◐ to ●; Open terminal runs the desktop's terminal with `spuff ssh
// NAME`; Destroy asks first, and its confirmation removes the shed, its
// process and its folder. Every action goes through the control API.
func TestTrayMakesStopsStartsAndDestroysAShed(t *testing.T) {
	env := processSheds(t, "1500ms")
	termLog := filepath.Join(t.TempDir(), "terminal.args")
	term := filepath.Join(t.TempDir(), "terminal")
	if err := os.WriteFile(term, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+termLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env["TERMINAL"] = term
	s, tray := startTrayEnv(t, "provision: {provider: process}\n", env)
	tray.waitFor("the empty state", labelled("No sheds attached"))

	tray.click(tray.waitFor("New shed", labelled("New shed")))
	busy := func(e menuEntry) bool { return strings.HasPrefix(e.Label, "◐ shed-1 — ") }
	ready := labelled("● shed-1 — ready")
	steps := tray.watchUntil("shed-1 ready", busy, ready)
	t.Logf("on the way to ready the menu showed %q", steps)
	// "starting spuff-guest serve" is the provider's own step (held for the
	// boot delay), not a state the row could show without the events.
	if !strings.Contains(strings.Join(steps, "|"), "◐ shed-1 — starting spuff-guest serve") {
		t.Fatalf("the menu showed the steps %q on the way to ready, want the provider's step among them", steps)
	}
	if n := tray.notes.waitFor(t, "shed-1 is ready"); !strings.Contains(n.Body, "spuff ssh shed-1") {
		t.Errorf("ready notification %+v", n)
	}
	s.h.WaitState(t, "shed-1", "connected")
	if l, _ := tray.layout(); strings.Contains(l.String(), "No sheds attached") {
		t.Fatalf("the empty state shows beside a made shed:\n%s", l)
	}

	tray.click(tray.under("● shed-1", "Stop"))
	tray.waitFor("shed-1 stopped", labelled("○ shed-1 — stopped"))
	shedDir := filepath.Join(s.h.Home, "sheds", "shed-1")
	if _, err := os.Stat(filepath.Join(shedDir, "process.json")); err != nil {
		t.Fatalf("Stop lost the shed's folder: %v", err)
	}

	tray.click(tray.under("○ shed-1", "Start"))
	steps = tray.watchUntil("shed-1 ready again", busy, ready)
	if len(steps) == 0 {
		t.Fatal("the menu showed no ◐ step between Start and ready")
	}
	tray.notes.waitFor(t, "shed-1 is ready")

	tray.click(tray.under("● shed-1", "Open terminal"))
	var args []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if args, _ = os.ReadFile(termLog); len(args) > 0 {
			break
		}
	}
	if got := strings.Fields(string(args)); len(got) != 4 || got[0] != "-e" || filepath.Base(got[1]) != "spuff" || got[2] != "ssh" || got[3] != "shed-1" {
		t.Fatalf("Open terminal ran $TERMINAL with %q, want -e …/spuff ssh shed-1", got)
	}

	// Destroy is two steps: the item only opens its confirmation.
	tray.click(tray.under("● shed-1", "Destroy…"))
	time.Sleep(500 * time.Millisecond)
	tray.waitFor("shed-1 still ready after Destroy… alone", ready)
	if _, err := os.Stat(shedDir); err != nil {
		t.Fatalf("Destroy… without its confirmation removed the shed: %v", err)
	}
	tray.click(tray.under("● shed-1", "Yes, destroy shed-1"))
	tray.waitFor("the empty state after Destroy", labelled("No sheds attached"))
	if l, _ := tray.layout(); strings.Contains(l.String(), "shed-1") {
		t.Fatalf("the destroyed shed is still in the menu:\n%s", l)
	}
	if _, err := os.Stat(shedDir); !os.IsNotExist(err) {
		t.Fatalf("Destroy left %s: %v", shedDir, err)
	}
	if out := s.h.MustSpuff(t, "list"); strings.Contains(out, "shed-1") {
		t.Fatalf("spuff list after Destroy:\n%s", out)
	}
}

func (n *noteServer) waitPrefix(t *testing.T, prefix string) posted {
	t.Helper()
	return n.waitMatch(t, 60*time.Second, fmt.Sprintf("%q…", prefix), func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// TestTrayCountsDownAndNotifiesBeforeIdleEnds: a shed made from the menu
// and left alone shows the idle countdown beside ● ready, the desktop is
// warned before the host stops it, the menu shows it ○ stopped, and the
// desktop is told it was stopped.
func TestTrayCountsDownAndNotifiesBeforeIdleEnds(t *testing.T) {
	env := processSheds(t, "0s")
	env["SPUFF_TEST_IDLE_EVERY"] = "1s"
	_, tray := startTrayEnv(t, "provision: {provider: process, idle_timeout: 12s, idle_notice: 8s}\n", env)
	tray.click(tray.waitFor("New shed", labelled("New shed")))
	tray.notes.waitFor(t, "shed-1 is ready")
	counting := tray.waitFor("the idle countdown", labelled("● shed-1 — ready · idle ends it in "))
	t.Logf("the menu shows %q", counting.Label)
	if n := tray.notes.waitPrefix(t, "shed-1 will be stopped in "); !strings.Contains(n.Body, "idle for") {
		t.Errorf("idle notice %+v", n)
	}
	tray.waitFor("shed-1 stopped by the host", labelled("○ shed-1 — stopped"))
	tray.notes.waitFor(t, "shed-1 was stopped")
}
