package sshagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"golang.org/x/crypto/ssh/agent"
)

// Serve answers the agent protocol on every connection l accepts, each
// with its own connection number, until ctx ends; then it closes l and the
// open connections and returns nil.
func Serve(ctx context.Context, l net.Listener, c Caller, log *slog.Logger) error {
	rep := newReporter(log)
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
		wg    sync.WaitGroup
		next  uint64
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		for nc := range conns {
			nc.Close()
		}
		mu.Unlock()
	})
	defer func() {
		stop()
		wg.Wait()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isTransient(err) {
				// Out of file descriptors: wait rather than spin or give up.
				rep.log.Warn("sshagent: accept failed; retrying", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("sshagent: accepting: %w", err)
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			nc.Close()
			return nil
		}
		// The quiet socket replaces nc (which it closes), so it is what the
		// end of Serve must close.
		w := newOneWrite(nc)
		conns[w] = struct{}{}
		next++
		a := &Agent{ctx: ctx, c: c, conn: next, rep: rep}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// ServeAgent returns at the client's EOF, or on a malformed message.
			_ = agent.ServeAgent(a, w)
			w.Close()
			mu.Lock()
			delete(conns, w)
			mu.Unlock()
		}()
	}
}

// oneWrite joins the 4-byte length ServeAgent writes to the reply that
// follows, so each reply is one write(2) and wakes the client once, and
// reads through a buffer, so a request's length and body take one read(2)
// rather than two. The socket is read and written quietly (bus.QuietConn).
type oneWrite struct {
	net.Conn
	r   *bufio.Reader
	buf []byte
}

func newOneWrite(nc net.Conn) *oneWrite {
	qc := bus.QuietConn(nc)
	return &oneWrite{Conn: qc, r: bufio.NewReaderSize(qc, 4<<10)}
}

func (w *oneWrite) Read(p []byte) (int, error) { return w.r.Read(p) }

func (w *oneWrite) Write(p []byte) (int, error) {
	if len(w.buf) == 0 && len(p) == 4 {
		w.buf = append(w.buf[:0], p...)
		return len(p), nil
	}
	if len(w.buf) == 0 {
		return w.Conn.Write(p)
	}
	w.buf = append(w.buf, p...)
	_, err := w.Conn.Write(w.buf)
	w.buf = w.buf[:0]
	return len(p), err
}

// isTransient reports accept errors that pass: out of descriptors, or a
// client that hung up before it was accepted.
func isTransient(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED)
}

// Listen creates the agent socket at path: mode 0600 for the shed user, or
// 0660 owned by group gid when gid >= 0 (for containers that run as
// another user). The socket is made in a private directory and renamed
// into place, so it never exists with a looser mode. A stale socket is
// replaced; a live one, or anything that is not a socket, is an error.
func Listen(path string, gid int) (net.Listener, error) {
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
	}
	l, err := bus.ListenUnix(path, mode, gid)
	if err != nil {
		return nil, fmt.Errorf("sshagent: %w", err)
	}
	return l, nil
}
