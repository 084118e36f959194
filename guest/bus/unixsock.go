package bus

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ListenUnix listens on a unix socket at path with the given mode, owned by
// group gid when gid >= 0. The socket is made in a private directory and
// renamed into place, so it never exists with a looser mode. A stale socket
// is replaced; a live one, or anything that is not a socket, is an error.
func ListenUnix(path string, mode os.FileMode, gid int) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("bus: %s exists and is not a socket; move it away", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("bus: %s is in use by another process", path)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bus: creating %s: %w", dir, err)
	}
	tmpDir, err := os.MkdirTemp(dir, ".sock")
	if err != nil {
		return nil, fmt.Errorf("bus: creating the socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("bus: listening: %w", err)
	}
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ul.Close()
		return nil, err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("bus: chmod the socket: %w", err))
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("bus: giving the socket to group %d: %w", gid, err))
		}
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		return fail(fmt.Errorf("bus: %w", err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("bus: placing the socket at %s: %w", path, err))
	}
	return &unixListener{UnixListener: ul, path: path, fi: fi}, nil
}

// unixListener removes its socket on Close, unless another has replaced it.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}
