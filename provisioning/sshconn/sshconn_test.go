package sshconn

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func hostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAcceptNewThenPinned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spuff", "known_hosts")
	check := AcceptNew(path)
	addr := &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 22}
	first, second := hostKey(t), hostKey(t)

	if err := check("203.0.113.7:22", addr, first); err != nil {
		t.Fatalf("first contact refused: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts not 0600: %v %v", fi, err)
	}
	if err := check("203.0.113.7:22", addr, first); err != nil {
		t.Fatalf("the recorded key was refused: %v", err)
	}
	err := check("203.0.113.7:22", addr, second)
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("a changed host key was accepted: %v", err)
	}
	// Another host is independent and gets recorded too.
	if err := check("198.51.100.2:2222", &net.TCPAddr{IP: net.IPv4(198, 51, 100, 2), Port: 2222}, second); err != nil {
		t.Fatalf("a second host refused: %v", err)
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Fatalf("known_hosts has %d lines:\n%s", n, b)
	}
}
