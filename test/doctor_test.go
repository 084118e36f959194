package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestDoctor: spuff doctor reports a passphrase-protected key it could not
// offer and a broker that does not start at login, each with the fix, and
// exits 0 on warnings; with the broker gone it fails and says how to start it.
func TestDoctor(t *testing.T) {
	home := harness.ShortTempDir(t)
	dotSSH := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dotSSH, 0o700); err != nil {
		t.Fatal(err)
	}
	keygen := testenv.Tool(t, "ssh-keygen")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "a passphrase", "-f", filepath.Join(dotSSH, "id_ed25519")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	h := harness.Start(t, harness.Options{Config: "ssh:\n  mode: local-keys\n", Env: map[string]string{"HOME": home}})
	h.Guest(t, "checked")
	out, err := h.Spuff(t, "doctor")
	if err != nil {
		t.Fatalf("doctor failed on warnings only: %v\n%s", err, out)
	}
	for _, want := range []string{"✓ broker", "✓ shed checked connected", "✓ ssh keys come from local-keys: they sign for sheds and log this computer in", "id_ed25519 not offered", "ssh-add", "no docker registry is allowlisted",
		"does not start at login", "spuff autostart on"} {
		if !strings.Contains(out, want) {
			t.Fatalf("doctor output lacks %q:\n%s", want, out)
		}
	}
	// autostart registers the spuff-app beside spuff: build it there, so
	// this test does not lean on another having built it first.
	testenv.GoBinary(t, "./app/cmd/spuff-app")
	h.MustSpuff(t, "autostart", "on")
	if out := h.MustSpuff(t, "doctor"); !strings.Contains(out, "✓ spuff-app starts at login") {
		t.Fatalf("doctor after spuff autostart on:\n%s", out)
	}
	h.Stop(t)
	out, err = h.Spuff(t, "doctor")
	if err == nil || !strings.Contains(out, "spuff-app --headless") {
		t.Fatalf("doctor with the broker down: %v\n%s", err, out)
	}
}

// TestDoctorReadsTheConfigSpuffAppRuns: with spuff-app started on --config
// FILE, doctor checks FILE (as the broker reports it), not the default.
func TestDoctorReadsTheConfigSpuffAppRuns(t *testing.T) {
	other := filepath.Join(harness.ShortTempDir(t), "elsewhere.yaml")
	if err := os.WriteFile(other, []byte("docker:\n  registries: [ghcr.io]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := harness.Start(t, harness.Options{Args: []string{"--config", other}})
	out, err := h.Spuff(t, "doctor")
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	if !strings.Contains(out, "✓ config "+other+"\n") || strings.Contains(out, "no docker registry is allowlisted") {
		t.Fatalf("doctor did not check %s, the config spuff-app runs with:\n%s", other, out)
	}
}
