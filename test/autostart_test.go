package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/test/testenv"
)

// desktopExec returns the program of a desktop entry's Exec line, unquoted
// per the Desktop Entry spec.
func desktopExec(t *testing.T, entry string) string {
	t.Helper()
	for _, line := range strings.Split(entry, "\n") {
		if v, ok := strings.CutPrefix(line, "Exec="); ok {
			if !strings.HasPrefix(v, `"`) {
				return strings.Fields(v)[0]
			}
			p, err := strconv.Unquote(strings.ReplaceAll(v, "\\`", "`"))
			if err != nil {
				t.Fatalf("Exec=%s does not unquote: %v", v, err)
			}
			return strings.ReplaceAll(p, `\$`, "$")
		}
	}
	t.Fatalf("no Exec line in\n%s", entry)
	return ""
}

// TestAutostartWritesAnEntryThatStartsTheBroker: `spuff autostart on`
// writes an XDG autostart entry that desktop-file-validate accepts and whose
// Exec is the spuff-app installed beside spuff; off removes it.
func TestAutostartWritesAnEntryThatStartsTheBroker(t *testing.T) {
	validate := testenv.Tool(t, "desktop-file-validate")
	cli := testenv.GoBinary(t, "./app/cmd/spuff")
	app := testenv.GoBinary(t, "./app/cmd/spuff-app")
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	spuff := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"autostart"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("spuff autostart %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := spuff(); !strings.Contains(out, "does not start at login") {
		t.Fatalf("status before on: %s", out)
	}
	spuff("on")
	entry := filepath.Join(home, ".config", "autostart", "spuff.desktop")
	b, err := os.ReadFile(entry)
	if err != nil {
		t.Fatalf("no entry after on: %v", err)
	}
	if out, err := exec.Command(validate, entry).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("desktop-file-validate %s: %v: %s\n%s", entry, err, out, b)
	}
	if got := desktopExec(t, string(b)); got != app {
		t.Fatalf("the entry starts %q, want the spuff-app beside spuff, %q", got, app)
	}
	if out, err := exec.Command(desktopExec(t, string(b)), "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "spuff-app is the broker") {
		t.Fatalf("the entry's program is not spuff-app: %v: %s", err, out)
	}
	if out := spuff(); !strings.Contains(out, "starts at login") || strings.Contains(out, "does not") {
		t.Fatalf("status after on: %s", out)
	}
	spuff("off")
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Fatalf("the entry is still there after off: %v", err)
	}
	cmd := exec.Command(cli, "autostart", "maybe")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "neither on nor off") {
		t.Fatalf("spuff autostart maybe: %v: %s", err, out)
	}
}
