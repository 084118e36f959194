package guestcmd

import (
	"bytes"
	"encoding/json"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallIntoRoot(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	root, home := t.TempDir(), t.TempDir()
	// An existing docker config keeps its other settings.
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(`{"detachKeys":"ctrl-x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := install([]string{"--user", me.Username, "--root", root, "--home", home}, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{
		"usr/local/bin/spuff-guest":               0o755,
		"etc/systemd/system/spuff-guest@.service": 0o644,
		"etc/environment.d/60-spuff.conf":         0o644,
		"etc/profile.d/spuff.sh":                  0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v, want mode %04o", p, fi, err, mode)
		}
	}
	dropIn, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/spuff-guest@"+me.Username+".service.d/50-docker-config.conf"))
	if err != nil || !strings.Contains(string(dropIn), "BindPaths=-"+filepath.Join(me.HomeDir, ".docker")) || !strings.Contains(string(dropIn), "ProtectHome=tmpfs") {
		t.Fatalf("no drop-in letting the daemon keep the docker config: %v\n%s", err, dropIn)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/spuff-guest@.service"))
	if !strings.Contains(string(unit), "User=%i") {
		t.Fatalf("the unit does not run as the shed's user:\n%s", unit)
	}
	b, _ := os.ReadFile(filepath.Join(home, ".docker", "config.json"))
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil || cfg["credsStore"] != "spuff" || cfg["detachKeys"] != "ctrl-x" {
		t.Fatalf("docker config %s (%v)", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(home, ".docker", "config.json")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("docker config mode %04o", fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), "systemctl enable --now spuff-guest@"+me.Username) {
		t.Fatalf("no next step printed:\n%s", out.String())
	}
}

func TestInstallRefusesStoredLogins(t *testing.T) {
	me, _ := user.Current()
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".docker"), 0o700)
	os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(`{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"}}}`), 0o600)
	var out bytes.Buffer
	err := install([]string{"--user", me.Username, "--root", t.TempDir(), "--home", home}, strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "registry logins") {
		t.Fatalf("install kept a shed holding registry logins: %v", err)
	}
	if strings.Contains(err.Error(), "dXNlcjpwYXNz") {
		t.Fatal("the error echoes the stored login")
	}
}

func TestInstallNeedsUser(t *testing.T) {
	t.Setenv("SUDO_USER", "")
	if err := install([]string{"--root", t.TempDir()}, strings.NewReader(""), &bytes.Buffer{}); err == nil {
		t.Fatal("install without a user succeeded")
	}
}

// TestServeRefusesAgentAPIWithoutToken: with --agent-listen and no token the
// daemon does not start at all, and leaves no socket behind.
func TestServeRefusesAgentAPIWithoutToken(t *testing.T) {
	t.Setenv("SPUFF_AGENT_TOKEN", "")
	run := filepath.Join(t.TempDir(), "run")
	var out, errb bytes.Buffer
	code := Main([]string{"serve", "--run-dir", run, "--aws-listen", "off", "--agent-listen", "127.0.0.1:0"}, nil, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "SPUFF_AGENT_TOKEN") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if _, err := os.Stat(run); err == nil {
		t.Fatal("the daemon created its run dir before refusing")
	}
}

// The agent token arrives on stdin and lands only in the root-only unit
// environment; nothing printed carries it.
func TestInstallAgentTokenFromStdin(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	const token = "tok-3f9a1c0e7b2d4a6f8e1c3b5d7f9a2c4e"
	var out bytes.Buffer
	args := []string{"--user", me.Username, "--root", root, "--home", t.TempDir(), "--agent-token-stdin"}
	if err := install(args, strings.NewReader(token+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(root, "etc/spuff/guest.env")
	b, err := os.ReadFile(env)
	if err != nil || !strings.Contains(string(b), "\nSPUFF_AGENT_TOKEN="+token+"\n") || !strings.Contains(string(b), "SPUFF_GUEST_ARGS=--agent-listen 127.0.0.1:7575\n") {
		t.Fatalf("%s: %v\n%s", env, err, b)
	}
	if fi, _ := os.Stat(env); fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s mode %04o, want 0600", env, fi.Mode().Perm())
	}
	if strings.Contains(out.String(), token) {
		t.Fatal("install printed the token")
	}
	for _, bad := range []string{"", "\n", "a b\n", "x$(id)\n"} {
		if err := install(args, strings.NewReader(bad), &bytes.Buffer{}); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}
