package audit

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux the per-line write and the path check are raw system calls.
// A plain one enters the scheduler's syscall path, and the first after the
// process was idle wakes Go's monitor thread (sysmon), which then polls
// every 20 µs for a millisecond: between requests spuff-app is idle, so
// that was a futex and a few nanosleeps on every request, on the same few
// cores the request needs. Both calls are short: an append to the page
// cache and a stat of a cached path. One that blocks (a disk in trouble)
// holds a processor for as long, which stalls no request that was not
// already waiting for this writer's lock.

// quietFile writes f with raw write(2) calls and flushes it through its
// own io_uring where there is one (fsync_linux.go).
type quietFile struct {
	*os.File
	fd   uintptr
	ring *fsyncRing // nil: fsync(2)
}

func quiet(f *os.File) file {
	q := &quietFile{File: f, fd: f.Fd()}
	if r, err := ringSetup(); err == nil {
		q.ring = r
	}
	return q
}

func (q *quietFile) Sync() error {
	if q.ring != nil {
		err := q.ring.fsync(q.fd)
		if !errors.Is(err, errRingUnusable) {
			if err != nil {
				return &os.PathError{Op: "sync", Path: q.Name(), Err: err}
			}
			return nil
		}
	}
	return q.File.Sync()
}

func (q *quietFile) Close() error {
	if q.ring != nil {
		q.ring.close()
	}
	return q.File.Close()
}

func (q *quietFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, q.fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
		switch e {
		case 0:
			if r == 0 {
				return n, &os.PathError{Op: "write", Path: q.Name(), Err: syscall.EIO}
			}
			n += int(r)
		case syscall.EINTR:
		default:
			return n, &os.PathError{Op: "write", Path: q.Name(), Err: e}
		}
	}
	return n, nil
}

// namesFile reports whether path (NUL-terminated) still names the file fi
// describes, with one raw statx; false sends the caller to the slow path,
// which finds out why.
func namesFile(path []byte, fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	var sx unix.Statx_t
	cwd := unix.AT_FDCWD
	_, _, e := syscall.RawSyscall6(unix.SYS_STATX, uintptr(cwd), uintptr(unsafe.Pointer(&path[0])),
		0, uintptr(unix.STATX_INO), uintptr(unsafe.Pointer(&sx)), 0)
	if e != 0 {
		return false
	}
	return sx.Ino == st.Ino && uint64(sx.Dev_major) == uint64(unix.Major(st.Dev)) && uint64(sx.Dev_minor) == uint64(unix.Minor(st.Dev))
}
