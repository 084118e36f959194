package bus

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// shortSock is a unix socket path short enough for sun_path, removed at the end.
func shortSock(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "spbus")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// serveUnix serves every connection to a fresh unix socket with h and
// opts, and hands each server-side Conn to the returned channel; the
// listener and the Conns nobody took are closed at the end.
func serveUnix(tb testing.TB, h Handler, opts Options) (string, <-chan *Conn) {
	tb.Helper()
	path := shortSock(tb)
	l, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	conns := make(chan *Conn, 16)
	tb.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			conns <- NewConn(nc, h, opts)
		}
	}()
	return path, conns
}
