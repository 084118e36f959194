// Package qemutest boots real QEMU sheds for tests: Boot creates one from
// a user-data with a host key made here, waits until its sshd accepts a
// login with that exact host key (never trust-on-first-use), and deletes
// it when the test ends. Tests of the Manager, bootstrap and the cloud
// providers' shared user-data use it to get a real VM.
package qemutest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/qemu"
	"github.com/spuff-dev/spuff/test/testenv"
)

// SSHTimeout bounds the wait for a booted shed's sshd. Boots take 20-70 s
// under TCG on a 2-core machine, more under load; this only catches a hang.
var SSHTimeout = 6 * time.Minute

// VM is a booted shed.
type VM struct {
	Name     string
	Provider *qemu.Provider
	Machine  provisioning.Machine
	// SSHAddr is 127.0.0.1:PORT of the shed's sshd.
	SSHAddr string
	// HostKey is the shed's pinned host key; HostKeyLine is its
	// authorized_keys form, for a known_hosts line ("[127.0.0.1]:PORT " + it).
	HostKey     ssh.PublicKey
	HostKeyLine string
	// Console is the serial console log (cloud-init prints there).
	Console string
}

// Require fails (under CI) or skips the test when QEMU is missing.
func Require(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool, "apt-get install qemu-system-x86 qemu-utils; scripts/setup-vm.sh")
		}
	}
}

// NewProvider returns a qemu provider whose sheds live under a temporary
// home and whose images come from the shared cache (~/.cache/spuff).
func NewProvider(t testing.TB, logger *slog.Logger) *qemu.Provider {
	t.Helper()
	home, err := os.MkdirTemp("", "spuff-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := qemu.New(provisioning.Env{Getenv: os.Getenv, Logger: logger, Home: home, Cache: testenv.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*qemu.Provider)
}

// NewHostKey makes a shed host key for CreateRequest.HostKey.
func NewHostKey(t testing.TB) (*provisioning.HostKey, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &provisioning.HostKey{PrivatePEM: pem.EncodeToMemory(block), Public: string(ssh.MarshalAuthorizedKey(sp))}, sp
}

// UserData is a minimal cloud-config: a sudo user with one login key.
func UserData(user, authorizedKey string) []byte {
	return fmt.Appendf(nil, "#cloud-config\nusers:\n  - name: %s\n    shell: /bin/bash\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    ssh_authorized_keys:\n      - %q\n", user, authorizedKey)
}

// Boot creates a shed named name on p from userData with a fresh pinned
// host key, and waits until user can log in with signer. The shed is
// deleted when the test ends.
func Boot(t testing.TB, p *qemu.Provider, name string, userData []byte, user string, signer ssh.Signer) *VM {
	t.Helper()
	Require(t)
	hk, pub := NewHostKey(t)
	ctx := context.Background()
	t.Cleanup(func() {
		if err := p.Delete(context.Background(), name); err != nil {
			t.Errorf("qemutest: delete %s: %v", name, err)
		}
	})
	m, err := p.Create(ctx, provisioning.CreateRequest{
		Name: name, Labels: provisioning.Labels(name, "qemutest"), UserData: userData, HostKey: hk,
		Progress: func(s string) { t.Logf("qemu %s: %s", name, s) },
	})
	if err != nil {
		t.Fatalf("qemutest: create %s: %v", name, err)
	}
	vm := &VM{Name: name, Provider: p, Machine: m, SSHAddr: m.SSHAddr, HostKey: pub,
		HostKeyLine: string(ssh.MarshalAuthorizedKey(pub)), Console: p.ConsoleLog(name)}
	c, err := vm.Dial(ctx, user, signer, SSHTimeout)
	if err != nil {
		t.Fatalf("qemutest: %v\n%s", err, vm.ConsoleTail())
	}
	c.Close()
	return vm
}

// Dial logs in as user, pinning the shed's host key, retrying until
// timeout while sshd is not up yet.
func (vm *VM) Dial(ctx context.Context, user string, signer ssh.Signer, timeout time.Duration) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(vm.HostKey),
		Timeout:         10 * time.Second,
	}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, err := ssh.Dial("tcp", vm.SSHAddr, cfg)
		if err == nil {
			return c, nil
		}
		last = err
		var keyErr *ssh.ServerAuthError
		if errors.As(err, &keyErr) || strings.Contains(err.Error(), "host key mismatch") {
			return nil, err
		}
		if m, gerr := vm.Provider.Get(ctx, vm.Name); gerr == nil && m.State != provisioning.Running {
			return nil, fmt.Errorf("qemutest: %s is %s while waiting for sshd (%v)", vm.Name, m.State, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil, fmt.Errorf("qemutest: no ssh login to %s at %s within %s: %w", vm.Name, vm.SSHAddr, timeout, last)
}

// ConsoleTail is the end of the serial console log, for failure messages.
func (vm *VM) ConsoleTail() string {
	b, _ := os.ReadFile(vm.Console)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "console (" + filepath.Base(vm.Console) + "):\n" + string(b)
}

// Run runs cmd in the shed over one ssh session and returns its output.
func Run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}
