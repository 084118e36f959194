package control

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sockDir is a temporary directory short enough for a unix socket's path
// (t.TempDir's can pass 108 bytes).
func sockDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestLockIsOnePerHome: a second Lock on the same home is refused while
// the first holds it, naming the holder's pid; once the first lets go, a
// new one may take it.
func TestLockIsOnePerHome(t *testing.T) {
	sock := filepath.Join(sockDir(t), "run", "spuff.sock")
	l, err := Lock(sock)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := Lock(sock)
	if err == nil {
		l2.Close()
		t.Fatal("a second Lock took the home while the first held it")
	}
	if !strings.Contains(err.Error(), "another spuff-app (pid "+strconv.Itoa(os.Getpid())+") is running") {
		t.Errorf("the refusal does not name the running spuff-app: %v", err)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the run directory: %v, %v; want 0700", fi, err)
	}
	l.Close()
	l3, err := Lock(sock)
	if err != nil {
		t.Fatalf("Lock after the first let go: %v", err)
	}
	l3.Close()
}

// TestListenTakesOverAStaleSocket: a socket file nobody listens on (a
// spuff-app that was killed) is replaced.
func TestListenTakesOverAStaleSocket(t *testing.T) {
	sock := filepath.Join(sockDir(t), "spuff.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l, err := Listen(sock, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("the new socket does not answer: %v", err)
	}
	c.Close()
}
