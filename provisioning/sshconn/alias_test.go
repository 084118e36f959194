package sshconn

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Two sheds that answer on the same loopback port, one after the other,
// are told apart by alias; a pinned alias refuses any other key.
func TestAliasesSurvivePortReuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	a, b := hostKey(t), hostKey(t)
	if err := os.WriteFile(path, []byte("[127.0.0.1]:2222 "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(b)))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Pinned(path, "spuff-a")("127.0.0.1:2222", addr, a); err == nil {
		t.Fatal("an alias with no pinned key was accepted")
	}
	if err := Pin(path, "spuff-a", a); err != nil {
		t.Fatal(err)
	}
	if err := Pinned(path, "spuff-a")("127.0.0.1:2222", addr, a); err != nil {
		t.Fatalf("the pinned key: %v", err)
	}
	if err := Pinned(path, "spuff-a")("127.0.0.1:2222", addr, b); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("another key on the same port: %v", err)
	}
	// accept-new for a second shed on the same port records under its alias.
	if err := AcceptNewAlias(path, "spuff-b")("127.0.0.1:2222", addr, b); err != nil {
		t.Fatal(err)
	}
	if err := AcceptNewAlias(path, "spuff-b")("127.0.0.1:2222", addr, a); err == nil {
		t.Fatal("accept-new took a changed key")
	}
	if err := Forget(path, "spuff-a"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if strings.Contains(string(got), "spuff-a ") || !strings.Contains(string(got), "spuff-b ") || !strings.Contains(string(got), "[127.0.0.1]:2222") {
		t.Fatalf("after forgetting spuff-a:\n%s", got)
	}
	// OpenSSH finds the entry as ssh -o HostKeyAlias=spuff-b does.
	if out, err := exec.Command("ssh-keygen", "-F", "spuff-b", "-f", path).CombinedOutput(); err != nil || !strings.Contains(string(out), "spuff-b ssh-ed25519") {
		t.Fatalf("ssh-keygen -F spuff-b: %v\n%s", err, out)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts mode %v", fi.Mode().Perm())
	}
}
