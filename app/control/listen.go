package control

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Listen opens the control socket: its directory 0700, the socket 0600, and
// every accepted peer checked to run as this same user.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	if err := runDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a socket; move it away", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s is in use: is another spuff-app running? Quit it before starting another", path)
		}
		_ = os.Remove(path)
	}
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control: chmod %s: %w", path, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &sameUser{Listener: l, uid: os.Getuid(), log: log}, nil
}

// runDir makes dir, the control socket's directory, 0700.
func runDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control: creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("control: chmod %s: %w", dir, err)
	}
	return nil
}

// errHeld is what lockFile returns when another process holds the lock.
var errHeld = errors.New("held by another process")

// Lock takes the one-spuff-app-per-home lock, spuff-app.lock beside the
// control socket at sock, and writes this process's pid in it. spuff-app
// takes it before anything else and lets it go last: a second spuff-app
// must stop before it dials a shed (a shed serves the host that dialed it
// last) or rewrites a file the first one appends to, and two started at
// once must not both find a stale socket and remove each other's. The
// kernel drops the lock with its process, so a killed spuff-app holds
// nothing.
func Lock(sock string) (io.Closer, error) {
	dir := filepath.Dir(sock)
	if err := runDir(dir); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "spuff-app.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("control: opening %s: %w", p, err)
	}
	if err := lockFile(f); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		if !errors.Is(err, errHeld) {
			return nil, fmt.Errorf("control: locking %s: %w", p, err)
		}
		// Only a number read from the file is printed.
		who := "another spuff-app"
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
			who += " (pid " + strconv.Itoa(pid) + ")"
		}
		return nil, fmt.Errorf("control: %s is running with %s: use that one, or quit it before starting another", who, filepath.Dir(dir))
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// sameUser drops connections from any other uid, root included: file modes
// keep others out of the directory, and this keeps them out if modes slip.
type sameUser struct {
	net.Listener
	uid int
	log *slog.Logger
}

func (s *sameUser) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		uid, err := peerUID(uc)
		if err != nil || uid != s.uid {
			s.log.Warn("control: refused a peer of another user", "peer_uid", uid, "err", err)
			c.Close()
			continue
		}
		return c, nil
	}
}
