package control

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
)

// Listen opens the control socket: its directory 0700, the socket 0600, and
// every accepted peer checked to run as this same user.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control: creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control: chmod %s: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a socket; move it away", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s is in use: is another spuff-app running?", path)
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
