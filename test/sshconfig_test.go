package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/provisioning/sshconn"
	"github.com/spuff-dev/spuff/provisioning/state"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestSSHConfigReachesAShed: a real sshd stands in for a ready cloud shed
// (a state.db row whose provider has no token here, so it is listed as it
// is, and its host key pinned under its alias). The lifecycle commands keep
// ~/.spuff/ssh_config (0600) with its block and say once how to include
// it; the real ssh and scp, given only that Include and no SSH_AUTH_SOCK,
// reach spuff-box with the agent spuff-app logs in with and its pinned key;
// spuff list --json shows the made shed; down removes the block.
func TestSSHConfigReachesAShed(t *testing.T) {
	scratch := harness.ShortTempDir(t)
	keyPath, pub := testenv.KeyPair(t, scratch, "id_ed25519", "ed25519")
	agentSock := startAgent(t, scratch, keyPath)
	if err := os.Remove(keyPath); err != nil { // the key lives only in the agent now
		t.Fatal(err)
	}
	sshd := testenv.StartSSHD(t, pub)
	h := harness.Start(t, harness.Options{Env: map[string]string{"SSH_AUTH_SOCK": agentSock, "HCLOUD_TOKEN": ""}})

	// An up that fails while there is no shed writes a file with no Host in
	// it: a tip to include it would come just before the error, for nothing
	// it could reach, and never again once a shed is there.
	if out, err := h.Spuff(t, "up", "first", "--provider", "hetzner"); err == nil || strings.Contains(out, "Include") {
		t.Fatalf("a failed up with no shed (err %v) gave the include tip:\n%s", err, out)
	}

	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(filepath.Join(h.Home, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	row := state.Shed{Name: "box", Provider: "hetzner", ProviderID: "42", State: state.Ready, SSHAddr: sshd.Addr, User: u.Username, HostKeyAlias: "spuff-box", HostKey: sshd.HostKeyPub}
	if err := db.CreateShed(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	db.Close()
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshd.HostKeyPub))
	if err != nil {
		t.Fatal(err)
	}
	if err := sshconn.Pin(filepath.Join(h.Home, "known_hosts"), "spuff-box", hk); err != nil {
		t.Fatal(err)
	}

	// A failed up still rewrites the file (the set may have changed), and
	// the first rewrite with a shed in it says how to include it.
	cfgPath := filepath.Join(h.Home, "ssh_config")
	out, err := h.Spuff(t, "up", "other", "--provider", "hetzner")
	if err == nil {
		t.Fatalf("up with no hetzner token succeeded:\n%s", out)
	}
	if !strings.Contains(out, "Include "+cfgPath) {
		t.Errorf("the first up with a shed to reach does not say how to include %s:\n%s", cfgPath, out)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", cfgPath, fi, err)
	}
	if out, _ := h.Spuff(t, "up", "other", "--provider", "hetzner"); strings.Contains(out, "Include") {
		t.Errorf("the include hint came twice:\n%s", out)
	}
	printed := h.MustSpuff(t, "ssh-config", "box")
	if file, _ := os.ReadFile(cfgPath); !strings.Contains(string(file), printed) || !strings.Contains(printed, "Host spuff-box") {
		t.Errorf("ssh-config box printed\n%s\nand %s holds\n%s", printed, cfgPath, file)
	}
	if _, err := h.Spuff(t, "ssh-config", "nosuch"); err == nil {
		t.Error("ssh-config of an unknown shed succeeded")
	}

	// The user's config is only the Include; ssh gets no agent from the
	// environment, so the IdentityAgent of the block is what logs in.
	userCfg := filepath.Join(scratch, "user_config")
	if err := os.WriteFile(userCfg, []byte("Include "+cfgPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.Dir}
	run := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, testenv.Tool(t, name), args...)
		c.Env = env
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s\nsshd:\n%s", name, args, err, b, sshd.Log())
		}
		return string(b)
	}
	if got := run("ssh", "-F", userCfg, "spuff-box", "echo", "reached"); strings.TrimSpace(got) != "reached" {
		t.Errorf("ssh spuff-box: %q", got)
	}
	src := filepath.Join(scratch, "payload.txt")
	if err := os.WriteFile(src, []byte("through scp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(scratch, "copied.txt")
	run("scp", "-F", userCfg, "-q", src, "spuff-box:"+dst)
	if b, err := os.ReadFile(dst); err != nil || string(b) != "through scp\n" {
		t.Errorf("scp to spuff-box: %q %v", b, err)
	}
	if got, err := h.Spuff(t, "ssh", "box", "--", "echo", "via spuff ssh"); err != nil || strings.TrimSpace(got) != "via spuff ssh" {
		t.Errorf("spuff ssh box: %q %v", got, err)
	}
	// A changed host key is refused, not asked about.
	other, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(pub))
	if err := sshconn.Pin(filepath.Join(h.Home, "known_hosts"), "spuff-box", other); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(testenv.Tool(t, "ssh"), "-F", userCfg, "-o", "BatchMode=yes", "spuff-box", "true")
	c.Env = env
	if b, err := c.CombinedOutput(); err == nil || !strings.Contains(string(b), "HOST IDENTIFICATION HAS CHANGED") {
		t.Errorf("ssh with a changed host key: %v\n%s", err, b)
	}

	var list []struct {
		Name string
		Made *struct{ Provider, State, Addr string }
	}
	if err := json.Unmarshal([]byte(h.MustSpuff(t, "list", "--json")), &list); err != nil || len(list) != 1 || list[0].Made == nil ||
		list[0].Made.State != "ready" || list[0].Made.Addr != sshd.Addr {
		t.Errorf("list --json: %+v %v", list, err)
	}
	h.MustSpuff(t, "down", "--force", "box")
	if file, _ := os.ReadFile(cfgPath); strings.Contains(string(file), "spuff-box") {
		t.Errorf("%s after down:\n%s", cfgPath, file)
	}
}
