package login

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnableDisable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if Enabled() {
		t.Fatal("enabled before Enable")
	}
	p, err := Enable(`/opt/my "apps"/spuff-app`)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "autostart", "spuff.desktop") {
		t.Fatalf("entry at %s", p)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), `Exec="/opt/my \"apps\"/spuff-app"`) {
		t.Fatalf("Exec line not quoted per the spec:\n%s", b)
	}
	if !Enabled() {
		t.Fatal("not enabled after Enable")
	}
	if err := Disable(); err != nil || Enabled() {
		t.Fatalf("Disable: %v, still enabled: %v", err, Enabled())
	}
	if err := Disable(); err != nil {
		t.Fatalf("second Disable: %v", err)
	}
	if _, err := Enable("relative/spuff-app"); err == nil {
		t.Fatal("accepted a relative path")
	}
}
