package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SSHD is a real OpenSSH sshd on 127.0.0.1 for one test.
type SSHD struct {
	Addr           string // 127.0.0.1:PORT
	Port           string
	Dir            string
	HostKeyPub     string // the ed25519 host public key line
	AuthorizedKeys string // path; append lines to it
	logPath        string
}

// Log returns what sshd logged so far.
func (s *SSHD) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// StartSSHD runs sshd -D on a free loopback port with its own host key and
// authorized_keys file (initially authorizedKeys), accepting only public
// key logins. It stops at the end of the test.
func StartSSHD(t testing.TB, authorizedKeys string) *SSHD {
	t.Helper()
	sshd := Tool(t, "sshd")
	keygen := Tool(t, "ssh-keygen")
	dir, err := os.MkdirTemp("", "sshd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, _ := os.ReadFile(hostKey + ".pub")
	ak := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(ak, []byte(authorizedKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd refuses to start without its privilege separation directory.
	_ = os.MkdirAll("/run/sshd", 0o755)
	port := FreePort(t)
	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AllowAgentForwarding yes
PrintMotd no
LogLevel VERBOSE
Subsystem sftp internal-sftp
`, port, hostKey, filepath.Join(dir, "sshd.pid"), ak)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{Addr: "127.0.0.1:" + port, Port: port, Dir: dir, HostKeyPub: strings.TrimSpace(string(pub)), AuthorizedKeys: ak, logPath: filepath.Join(dir, "sshd.log")}
	// The log is a file, not a pipe: sshd's per-session children start their
	// own sessions and would keep a pipe (and so Wait) open after sshd ends.
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p := MustStartProcess(t, "sshd", withOutput(exec.Command(sshd, "-D", "-e", "-f", cfg), logf))
	if err := p.WaitReady(10*time.Second, Dialable("tcp", s.Addr)); err != nil {
		t.Fatalf("sshd did not listen on %s: %v\n%s", s.Addr, err, s.Log())
	}
	return s
}

func withOutput(cmd *exec.Cmd, w io.Writer) *exec.Cmd {
	cmd.Stdout, cmd.Stderr = w, w
	return cmd
}

// KnownHostsLine is the line an ssh client's known_hosts needs for this sshd.
func (s *SSHD) KnownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%s %s", s.Port, s.HostKeyPub)
}

// Authorize appends one authorized_keys line.
func (s *SSHD) Authorize(t testing.TB, line string) {
	t.Helper()
	f, err := os.OpenFile(s.AuthorizedKeys, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.TrimSpace(line) + "\n"); err != nil {
		t.Fatal(err)
	}
}

// KeyPair generates an unencrypted key of type typ ("ed25519", "rsa") at
// dir/name and returns the private key path and the public key line.
func KeyPair(t testing.TB, dir, name, typ string) (string, string) {
	t.Helper()
	keygen := Tool(t, "ssh-keygen")
	p := filepath.Join(dir, name)
	args := []string{"-q", "-t", typ, "-N", "", "-C", name, "-f", p}
	if typ == "rsa" {
		args = append(args, "-b", "3072")
	}
	if out, err := exec.Command(keygen, args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return p, strings.TrimSpace(string(pub))
}
