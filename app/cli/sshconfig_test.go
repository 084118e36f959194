package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/control/api"
)

// sshG is what the real ssh makes of config for host: `ssh -G`'s
// lower-case keyword → value.
func sshG(t *testing.T, config, host string) map[string]string {
	t.Helper()
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no ssh client")
	}
	f := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ssh, "-G", "-F", f, host).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G: %v\n%s\nconfig:\n%s", err, out, config)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			got[k] = v
		}
	}
	return got
}

// The block OpenSSH reads for spuff-NAME: the shed's address and user, its
// key checked under its alias in spuff's known_hosts (a path with a space
// and a % survives), the identity spuff-app logs in with, no forwarded
// agent; sheds that are not ready get no block.
func TestSSHConfigParsedBySSH(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "Application Support", "100%", "known_hosts")
	agent := filepath.Join(dir, "Group Containers", "agent.sock")
	sheds := []api.MadeShed{
		{Name: "demo", Provider: "qemu", State: "ready", Addr: "127.0.0.1:40123", User: "dev", Alias: "spuff-demo"},
		{Name: "web", Provider: "hetzner", State: "ready", Addr: "[2001:db8::7]:22", User: "dev", Alias: "spuff-web"},
		{Name: "broken", Provider: "qemu", State: "failed", Addr: "127.0.0.1:40124", User: "dev", Alias: "spuff-broken"},
		{Name: "stray", Provider: "qemu", State: "ready", Addr: "127.0.0.1:40125", User: "dev", Alias: "spuff-stray", Orphan: "no row"},
	}
	out, skipped := renderSSHConfig(sheds, sshIdentity{mode: "agent-forward", agent: agent}, kh, "")
	if len(skipped) != 0 {
		t.Fatal(skipped)
	}
	got := sshG(t, out, "spuff-demo")
	for k, want := range map[string]string{
		"hostname": "127.0.0.1", "port": "40123", "user": "dev", "hostkeyalias": "spuff-demo",
		"userknownhostsfile": kh, "stricthostkeychecking": "true", "forwardagent": "no",
		"identityagent": agent, "identitiesonly": "no",
	} {
		if got[k] != want {
			t.Errorf("ssh -G spuff-demo: %s = %q, want %q", k, got[k], want)
		}
	}
	if got := sshG(t, out, "spuff-web"); got["hostname"] != "2001:db8::7" || got["port"] != "22" {
		t.Errorf("ssh -G spuff-web: %s %s", got["hostname"], got["port"])
	}
	for _, n := range []string{"spuff-broken", "spuff-stray"} {
		if strings.Contains(out, n) {
			t.Errorf("a block for %s, which is not a ready shed:\n%s", n, out)
		}
	}
	// local-keys: ssh's own default files, which local-keys reads, and no agent.
	out, _ = renderSSHConfig(sheds, sshIdentity{mode: "local-keys"}, kh, "demo")
	if strings.Contains(out, "spuff-web") {
		t.Errorf("ssh-config demo wrote web too:\n%s", out)
	}
	got = sshG(t, out, "spuff-demo")
	if got["identityagent"] != "none" || got["identitiesonly"] != "yes" {
		t.Errorf("local-keys: identityagent %q identitiesonly %q", got["identityagent"], got["identitiesonly"])
	}
}

// A field ssh could not read back (or that would add a keyword) skips the
// shed rather than write it.
func TestSSHConfigRefusesWhatSSHWouldMisread(t *testing.T) {
	base := api.MadeShed{Name: "demo", State: "ready", Addr: "127.0.0.1:2222", User: "dev", Alias: "spuff-demo"}
	for _, tc := range []struct {
		name  string
		edit  func(*api.MadeShed)
		kh    string
		agent string
	}{
		{"newline in addr", func(m *api.MadeShed) { m.Addr = "127.0.0.1\n  ProxyCommand x:22" }, "/k", "/a"},
		{"space in host", func(m *api.MadeShed) { m.Addr = "a b:22" }, "/k", "/a"},
		{"bad port", func(m *api.MadeShed) { m.Addr = "127.0.0.1:0" }, "/k", "/a"},
		{"user", func(m *api.MadeShed) { m.User = "dev ProxyCommand" }, "/k", "/a"},
		{"alias", func(m *api.MadeShed) { m.Alias = "spuff-other" }, "/k", "/a"},
		{"quote in known_hosts", func(*api.MadeShed) {}, `/k"x`, "/a"},
		{"newline in agent", func(*api.MadeShed) {}, "/k", "/a\nProxyCommand x"},
		{"env in agent", func(*api.MadeShed) {}, "/k", "/${HOME}/a"},
	} {
		m := base
		tc.edit(&m)
		out, skipped := renderSSHConfig([]api.MadeShed{m}, sshIdentity{mode: "agent-forward", agent: tc.agent}, tc.kh, "")
		if out != "" || len(skipped) != 1 {
			t.Errorf("%s: wrote %q (skipped %v)", tc.name, out, skipped)
		}
	}
}

func TestWriteSSHConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spuff", "ssh_config")
	const header, box, web = "# spuff\n", "\nHost spuff-box\n", "\nHost spuff-web\n"
	for i, tc := range []struct {
		content string
		first   bool
	}{{header, false}, {header, false}, {header + box, true}, {header + box + web, false}, {header, false}, {header + web, true}} {
		first, err := writeSSHConfig(p, tc.content)
		if err != nil || first != tc.first {
			t.Fatalf("write %d: first host %v, %v", i, first, err)
		}
		fi, err := os.Stat(p)
		if b, _ := os.ReadFile(p); err != nil || string(b) != tc.content || fi.Mode().Perm() != 0o600 {
			t.Fatalf("write %d: %q %v %v", i, b, fi.Mode(), err)
		}
	}
}
