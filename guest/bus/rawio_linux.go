package bus

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawStream reads and writes a unix socket with raw system calls, waiting
// in the runtime's poller exactly as net.Conn does. A plain read or write
// enters the scheduler's syscall path, and the first one after the process
// was idle wakes Go's monitor thread (sysmon) out of its sleep; for a
// daemon that mostly relays, that was two or three extra thread wake-ups
// per request. The socket is non-blocking, so a raw call never blocks: it
// says EAGAIN and the goroutine waits in the poller instead.
type rawStream struct {
	*net.UnixConn
	rc syscall.RawConn
}

// rawStreamOf returns rw as a rawStream where it is a unix socket, else rw.
func rawStreamOf(rw io.ReadWriteCloser) io.ReadWriteCloser {
	if uc, ok := rw.(*net.UnixConn); ok {
		return QuietConn(uc)
	}
	return rw
}

// QuietConn returns c reading and writing with raw system calls (see
// rawStream) where c is a unix socket, else c itself. Deadlines and Close
// work as on c.
func QuietConn(c net.Conn) net.Conn {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawStream{UnixConn: uc, rc: rc}
}

func (s *rawStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			errno = e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "unix", Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *rawStream) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := s.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				if r == 0 {
					errno = syscall.EIO // a socket never accepts nothing
					return true
				}
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, &net.OpError{Op: "write", Net: "unix", Err: os.NewSyscallError("write", errno)}
	}
	return n, nil
}
