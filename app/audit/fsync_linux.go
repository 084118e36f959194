package audit

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a flush goes through a small io_uring of its own rather than
// fsync(2). An fsync blocks its thread in the kernel for the disk's
// round trip, and Go's runtime treats any blocking system call alike: the
// call wakes its monitor thread (sysmon), which after 20 µs takes the
// process's only processor from the blocked thread and starts another
// thread to hold it, and the blocked thread must win it back when the disk
// answers. In fsync mode that happens on every request, and the threads
// it wakes compete with the disk's completion for the same few cores:
// measured through spuff-app, an fsync took about 0.6 ms where the same
// append and fsync took 0.4 ms bare. Through the ring, the kernel's own
// worker thread waits for the disk; the submission returns at once, and
// the flusher parks on an eventfd in the runtime's network poller like
// any socket read. The result is fsync(2)'s, error included.
//
// Only what one flush at a time needs is here: a ring of two entries and
// IORING_OP_FSYNC. A kernel or sandbox without io_uring (ENOSYS, EPERM,
// kernel.io_uring_disabled) gets fsync(2), as does any flush the ring
// could not run.

// The io_uring ABI (include/uapi/linux/io_uring.h), as much as is used.
const (
	ioringOffSQRing       = 0
	ioringOffSQEs         = 0x10000000
	ioringFeatSingleMmap  = 1 << 0
	ioringOpFsync         = 3
	ioringRegisterEventfd = 4
	iosqeAsync            = 1 << 4
)

type sqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type cqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type uringParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  sqringOffsets
	CQOff                                                                  cqringOffsets
}

type uringSQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	Pad         uint64
}

type uringCQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// errRingUnusable says the ring could not run a flush; fsync(2) must.
var errRingUnusable = errors.New("audit: io_uring cannot flush")

// ringSetup makes a Writer's flush ring (a variable so tests can refuse it).
var ringSetup = newFsyncRing

// fsyncRing runs one fsync at a time through an io_uring.
type fsyncRing struct {
	mu     sync.Mutex
	fd     uintptr
	ring   []byte // the SQ and CQ rings, one mapping
	sqes   []byte
	ev     *os.File // the eventfd the kernel signals on each completion
	evc    syscall.RawConn
	broken bool
	closed bool
	seq    uint64

	sqTail, sqMask, cqHead, cqTail, cqMask *uint32
	sqArray, cqes                          unsafe.Pointer
}

func newFsyncRing() (*fsyncRing, error) {
	var p uringParams
	fd, _, e := syscall.Syscall(unix.SYS_IO_URING_SETUP, 2, uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("audit: io_uring_setup: %w", e)
	}
	r := &fsyncRing{fd: fd}
	if err := r.setup(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *fsyncRing) setup(p *uringParams) error {
	if p.Features&ioringFeatSingleMmap == 0 {
		return errors.New("audit: io_uring without single-mmap rings (kernel before 5.4)")
	}
	size := max(p.SQOff.Array+p.SQEntries*4, p.CQOff.CQEs+p.CQEntries*uint32(unsafe.Sizeof(uringCQE{})))
	var err error
	if r.ring, err = unix.Mmap(int(r.fd), ioringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("audit: mapping the io_uring: %w", err)
	}
	if r.sqes, err = unix.Mmap(int(r.fd), ioringOffSQEs, int(p.SQEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("audit: mapping the io_uring entries: %w", err)
	}
	at := func(off uint32) unsafe.Pointer { return unsafe.Pointer(&r.ring[off]) }
	r.sqTail, r.sqMask, r.sqArray = (*uint32)(at(p.SQOff.Tail)), (*uint32)(at(p.SQOff.RingMask)), at(p.SQOff.Array)
	r.cqHead, r.cqTail, r.cqMask, r.cqes = (*uint32)(at(p.CQOff.Head)), (*uint32)(at(p.CQOff.Tail)), (*uint32)(at(p.CQOff.RingMask)), at(p.CQOff.CQEs)

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("audit: eventfd: %w", err)
	}
	// A non-blocking descriptor is one the runtime's poller waits on.
	r.ev = os.NewFile(uintptr(efd), "audit-flush-eventfd")
	if r.evc, err = r.ev.SyscallConn(); err != nil {
		return fmt.Errorf("audit: eventfd: %w", err)
	}
	fd32 := int32(efd)
	if _, _, e := syscall.Syscall6(unix.SYS_IO_URING_REGISTER, r.fd, ioringRegisterEventfd, uintptr(unsafe.Pointer(&fd32)), 1, 0, 0); e != 0 {
		return fmt.Errorf("audit: registering the io_uring eventfd: %w", e)
	}
	return nil
}

// fsync flushes fd as fsync(2) does and returns its error, or
// errRingUnusable when the ring could not run it (nothing was flushed, or
// the flush was refused before it ran), for fsync(2) to do instead.
func (r *fsyncRing) fsync(fd uintptr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken || r.closed {
		return errRingUnusable
	}
	r.seq++
	tail := atomic.LoadUint32(r.sqTail)
	i := tail & *r.sqMask
	*(*uringSQE)(unsafe.Add(unsafe.Pointer(&r.sqes[0]), uintptr(i)*unsafe.Sizeof(uringSQE{}))) = uringSQE{
		// IOSQE_ASYNC: straight to the kernel's worker, so that the
		// submission never waits for the disk itself.
		Opcode: ioringOpFsync, Flags: iosqeAsync, Fd: int32(fd), UserData: r.seq,
	}
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(i)*4)) = i
	atomic.StoreUint32(r.sqTail, tail+1)
	// Raw: the submission returns at once, and a plain system call would
	// wake the very monitor thread this avoids.
	n, _, e := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, r.fd, 1, 0, 0, 0, 0)
	if e != 0 || n != 1 {
		// The entry may still sit in the ring; nothing more goes through it.
		r.broken = true
		return errRingUnusable
	}
	var res int32
	var stale bool
	err := r.evc.Read(func(efd uintptr) bool {
		var b [8]byte
		syscall.RawSyscall(syscall.SYS_READ, efd, uintptr(unsafe.Pointer(&b[0])), 8)
		head := atomic.LoadUint32(r.cqHead)
		if head == atomic.LoadUint32(r.cqTail) {
			return false
		}
		c := (*uringCQE)(unsafe.Add(r.cqes, uintptr(head&*r.cqMask)*unsafe.Sizeof(uringCQE{})))
		res, stale = c.Res, c.UserData != r.seq
		atomic.StoreUint32(r.cqHead, head+1)
		return true
	})
	if err != nil || stale {
		r.broken = true
		return errRingUnusable
	}
	broken, err := flushResult(res)
	r.broken = r.broken || broken
	return err
}

// flushResult reads a completed flush: nil, the disk's error, or
// errRingUnusable when fsync(2) must run it instead, with broken set when
// the ring should not be asked again.
func flushResult(res int32) (broken bool, err error) {
	if res >= 0 {
		return false, nil
	}
	switch e := syscall.Errno(-res); e {
	case syscall.EINVAL, syscall.EOPNOTSUPP:
		// A kernel that refuses the request (IOSQE_ASYNC before 5.6)
		// refuses it every time; a file that cannot be flushed, fsync(2)
		// refuses too.
		return true, errRingUnusable
	case syscall.EAGAIN, syscall.EINTR, syscall.ECANCELED:
		return false, errRingUnusable // the flush did not run
	default:
		// The disk's answer, given once: fsync(2) after a failed flush
		// may well succeed with the lines lost, so it is not asked.
		return false, e
	}
}

func (r *fsyncRing) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	if r.ring != nil {
		_ = unix.Munmap(r.ring)
	}
	if r.sqes != nil {
		_ = unix.Munmap(r.sqes)
	}
	if r.ev != nil {
		r.ev.Close()
	}
	syscall.Close(int(r.fd))
}
