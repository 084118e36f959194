package control

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerUID is getpeereid(2): LOCAL_PEERCRED on the socket.
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Xucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if serr != nil {
		return -1, fmt.Errorf("control: LOCAL_PEERCRED: %w", serr)
	}
	return int(cred.Uid), nil
}
