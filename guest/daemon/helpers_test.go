package daemon_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/daemon"
)

// runDir is a run directory short enough for unix socket paths, removed at
// the end.
func runDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runAttached runs d, whose run directory is dir, until the test ends, and
// attaches a host to its bus.sock that answers d's requests with h.
func runAttached(t *testing.T, d *daemon.Daemon, dir string, h bus.Handler) *bus.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	var nc net.Conn
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if nc, err = net.Dial("unix", filepath.Join(dir, "bus.sock")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	host := bus.NewConn(nc, h, bus.Options{})
	t.Cleanup(func() { host.Close() })
	return host
}
