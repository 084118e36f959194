package bus

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// rawStream is a unix socket read and written with raw system calls and
// watched for input only. Two costs of a plain net.Conn go away:
//
//   - A plain read or write enters the scheduler's syscall path, and the
//     first one after the process was idle wakes Go's monitor thread
//     (sysmon); a raw call on the non-blocking socket says EAGAIN instead
//     of blocking and never enters that path.
//   - The runtime's poller watches every socket for output too, and a unix
//     socket signals "writable" each time its peer reads what was written.
//     In a request and its answer the peer reads at once, while this side
//     already sleeps waiting for the answer: one needless wake-up of the
//     poller's thread per message sent (measured: 2 of spuff-app's 5
//     context switches per agent-forward sign).
//
// So the socket is taken out of the runtime's poller (the net.Conn is
// closed; a duplicate of its descriptor is kept) and put in an epoll set
// of its own that watches it for input only, and that set, which is
// itself pollable, is what the runtime's poller waits on: a reader parks
// exactly as on a net.Conn, and only input wakes it. A write that finds
// the socket full (EAGAIN, rare: bulk data) watches for output in a second
// set, only for as long as it waits.
type rawStream struct {
	laddr, raddr net.Addr
	fd           int
	closed       atomic.Bool
	// io is held shared around each raw call on fd and exclusively by
	// Close around closing it, so a call never reaches a reused number.
	io sync.RWMutex
	// in is the input watch, in the runtime's poller; inRC waits on it.
	in   *os.File
	inRC syscall.RawConn
	wmu  sync.Mutex // one Write at a time, as net.Conn serialises them
	// dmu guards the write deadline and out, the output watch made by the
	// first write that had to wait.
	dmu   sync.Mutex
	wdl   time.Time
	out   *os.File
	outRC syscall.RawConn
}

// rawStreamOf returns rw as a rawStream where it is a unix socket, else rw.
func rawStreamOf(rw io.ReadWriteCloser) io.ReadWriteCloser {
	if uc, ok := rw.(*net.UnixConn); ok {
		return QuietConn(uc)
	}
	return rw
}

// QuietConn returns c as a rawStream where c is a unix socket, else c
// itself; where the socket cannot be moved to its own watch, c is kept
// as it is. Deadlines and Close work as on c. c must not be used after.
func QuietConn(c net.Conn) net.Conn {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c
	}
	s, err := newRawStream(uc)
	if err != nil {
		return c
	}
	return s
}

func newRawStream(uc *net.UnixConn) (*rawStream, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(orig uintptr) {
		// The duplicate shares the socket and its O_NONBLOCK.
		var r uintptr
		var e syscall.Errno
		r, _, e = syscall.RawSyscall(syscall.SYS_FCNTL, orig, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	in, err := watch(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP, "unix-input")
	if err != nil {
		syscall.Close(fd)
		return nil, err
	}
	inRC, err := in.SyscallConn()
	if err != nil {
		in.Close()
		syscall.Close(fd)
		return nil, err
	}
	s := &rawStream{laddr: uc.LocalAddr(), raddr: uc.RemoteAddr(), fd: fd, in: in, inRC: inRC}
	// Closing the net.Conn takes the socket out of the runtime's poller;
	// the duplicate keeps it open.
	_ = uc.Close()
	return s, nil
}

// watch returns a pollable epoll set watching fd for events (level
// triggered; the set is never harvested, so it stays readable once fd has
// signalled: each new event still wakes its waiter).
func watch(fd int, events uint32, name string) (*os.File, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if fd >= 0 {
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
			syscall.Close(ep)
			return nil, os.NewSyscallError("epoll_ctl", err)
		}
	}
	// Non-blocking, so os.NewFile puts it in the runtime's poller.
	if err := syscall.SetNonblock(ep, true); err != nil {
		syscall.Close(ep)
		return nil, err
	}
	return os.NewFile(uintptr(ep), name), nil
}

// sys makes one raw read or write of p on the socket, retrying EINTR; it
// reports closed instead once Close has begun.
func (s *rawStream) sys(trap uintptr, p []byte) (n int, errno syscall.Errno, closed bool) {
	s.io.RLock()
	defer s.io.RUnlock()
	if s.closed.Load() {
		return 0, 0, true
	}
	for {
		r, _, e := syscall.RawSyscall(trap, uintptr(s.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(r), e, false
		}
	}
}

func (s *rawStream) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "unix", Source: s.laddr, Addr: s.raddr, Err: err}
}

// waitErr is the error of a wait on a watch: the stream's own close, a
// deadline, or what the poller said.
func (s *rawStream) waitErr(op string, err error) error {
	if s.closed.Load() {
		return s.opError(op, net.ErrClosed)
	}
	return s.opError(op, err)
}

func (s *rawStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	var closed bool
	err := s.inRC.Read(func(uintptr) bool {
		n, errno, closed = s.sys(syscall.SYS_READ, p)
		return closed || errno != syscall.EAGAIN
	})
	switch {
	case closed:
		return 0, s.opError("read", net.ErrClosed)
	case err != nil:
		return 0, s.waitErr("read", err)
	case errno != 0:
		return 0, s.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *rawStream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n := 0
	for n < len(p) {
		if s.writeExpired() {
			return n, s.opError("write", os.ErrDeadlineExceeded)
		}
		r, errno, closed := s.sys(syscall.SYS_WRITE, p[n:])
		switch {
		case closed:
			return n, s.opError("write", net.ErrClosed)
		case errno == 0 && r == 0:
			return n, s.opError("write", os.NewSyscallError("write", syscall.EIO)) // a socket never accepts nothing
		case errno == 0:
			n += r
		case errno == syscall.EAGAIN:
			m, err := s.waitToWrite(p[n:])
			n += m
			if err != nil {
				return n, err
			}
		default:
			return n, s.opError("write", os.NewSyscallError("write", errno))
		}
	}
	return n, nil
}

func (s *rawStream) writeExpired() bool {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	return !s.wdl.IsZero() && !time.Now().Before(s.wdl)
}

// waitToWrite watches the socket for output, writes what it can of p once
// there is room, and stops watching: a watch left in place would wake the
// poller each time the peer reads.
func (s *rawStream) waitToWrite(p []byte) (int, error) {
	rc, err := s.watchOutput()
	if err != nil {
		return 0, err
	}
	defer s.unwatchOutput()
	var n int
	var errno syscall.Errno
	var closed bool
	err = rc.Read(func(uintptr) bool {
		n, errno, closed = s.sys(syscall.SYS_WRITE, p)
		return closed || errno != syscall.EAGAIN
	})
	switch {
	case closed:
		return 0, s.opError("write", net.ErrClosed)
	case err != nil:
		return 0, s.waitErr("write", err)
	case errno != 0:
		return 0, s.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

func (s *rawStream) watchOutput() (syscall.RawConn, error) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.closed.Load() {
		return nil, s.opError("write", net.ErrClosed)
	}
	if s.out == nil {
		out, err := watch(-1, 0, "unix-output")
		if err != nil {
			return nil, s.opError("write", err)
		}
		rc, err := out.SyscallConn()
		if err != nil {
			out.Close()
			return nil, s.opError("write", err)
		}
		_ = out.SetReadDeadline(s.wdl)
		s.out, s.outRC = out, rc
	}
	if err := s.ctlOutput(syscall.EPOLL_CTL_ADD, syscall.EPOLLOUT); err != nil {
		return nil, s.opError("write", err)
	}
	return s.outRC, nil
}

func (s *rawStream) unwatchOutput() {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if !s.closed.Load() {
		_ = s.ctlOutput(syscall.EPOLL_CTL_DEL, 0)
	}
}

// ctlOutput changes the output watch; the caller holds dmu.
func (s *rawStream) ctlOutput(op int, events uint32) error {
	rc := s.outRC
	var err error
	if cerr := rc.Control(func(ep uintptr) {
		s.io.RLock()
		defer s.io.RUnlock()
		err = syscall.EpollCtl(int(ep), op, s.fd, &syscall.EpollEvent{Events: events, Fd: int32(s.fd)})
	}); cerr != nil {
		return cerr
	}
	return os.NewSyscallError("epoll_ctl", err)
}

func (s *rawStream) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return s.opError("close", net.ErrClosed)
	}
	// Closing the watches wakes a parked reader and writer; holding io
	// then waits out any raw call still on the socket.
	_ = s.in.Close()
	s.dmu.Lock()
	if s.out != nil {
		_ = s.out.Close()
	}
	s.dmu.Unlock()
	s.io.Lock()
	defer s.io.Unlock()
	if err := syscall.Close(s.fd); err != nil {
		return s.opError("close", os.NewSyscallError("close", err))
	}
	return nil
}

func (s *rawStream) LocalAddr() net.Addr  { return s.laddr }
func (s *rawStream) RemoteAddr() net.Addr { return s.raddr }

func (s *rawStream) SetDeadline(t time.Time) error {
	if err := s.SetReadDeadline(t); err != nil {
		return err
	}
	return s.SetWriteDeadline(t)
}

func (s *rawStream) SetReadDeadline(t time.Time) error {
	if s.closed.Load() {
		return s.opError("set", net.ErrClosed)
	}
	return s.in.SetReadDeadline(t)
}

// SetWriteDeadline also ends a write already waiting for room.
func (s *rawStream) SetWriteDeadline(t time.Time) error {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.closed.Load() {
		return s.opError("set", net.ErrClosed)
	}
	s.wdl = t
	if s.out != nil {
		return s.out.SetReadDeadline(t)
	}
	return nil
}

var _ net.Conn = (*rawStream)(nil)
