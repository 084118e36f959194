package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// ringDone is how many flushes the kernel says completed on r (its CQ
// head in /proc/self/fdinfo), so a test can tell a flush the ring ran
// from one fsync(2) ran instead.
func ringDone(t *testing.T, r *fsyncRing) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", r.fd))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CqHead:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no CqHead in the ring's fdinfo:\n%s", b)
	return 0
}

func TestRingABI(t *testing.T) {
	for _, c := range []struct {
		what      string
		got, want uintptr
	}{
		{"io_uring_params", unsafe.Sizeof(uringParams{}), 120},
		{"io_uring_sqe", unsafe.Sizeof(uringSQE{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(uringCQE{}), 16},
	} {
		if c.got != c.want {
			t.Errorf("struct %s is %d bytes, the kernel's is %d", c.what, c.got, c.want)
		}
	}
}

// TestFsyncModeFlushesThroughTheRing: in fsync mode every Write's flush
// is one the ring ran, and its line is in the file when Write returns.
func TestFsyncModeFlushesThroughTheRing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	w, err := OpenWith(p, Options{Durability: Fsync})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	q, ok := w.f.(*quietFile)
	if !ok || q.ring == nil {
		t.Skipf("no io_uring here (%T); fsync(2) flushes instead", w.f)
	}
	for i := range 5 {
		if err := w.Write(context.Background(), Record{Shed: "s", NS: "ssh-agent", Op: "sign", Result: ResultOK}); err != nil {
			t.Fatal(err)
		}
		if got := ringDone(t, q.ring); got != i+1 {
			t.Fatalf("after %d writes the ring ran %d flushes", i+1, got)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 5 {
		t.Fatalf("%d lines in the log, want 5", n)
	}
	if q.ring.broken {
		t.Fatal("the ring gave up on good flushes")
	}
}

// TestRingRefusedFallsBackToFsync: where the ring cannot be made (a
// sandbox without io_uring), or cannot flush the file, fsync(2) does it,
// and its error is the one reported.
func TestRingRefusedFallsBackToFsync(t *testing.T) {
	saved := ringSetup
	ringSetup = func() (*fsyncRing, error) { return nil, syscall.EPERM }
	p := filepath.Join(t.TempDir(), "audit.log")
	w, err := OpenWith(p, Options{Durability: Fsync})
	ringSetup = saved
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if q := w.f.(*quietFile); q.ring != nil {
		t.Fatal("a refused ring is in use")
	}
	if err := w.Write(context.Background(), Record{Shed: "s", NS: "ssh-agent", Op: "sign", Result: ResultOK}); err != nil {
		t.Fatalf("fsync(2) did not take over: %v", err)
	}

	// A pipe cannot be flushed: the ring says EINVAL, gives up, and
	// fsync(2) says so too.
	r, err := ringSetup()
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	q := &quietFile{File: pw, fd: pw.Fd(), ring: r}
	defer q.Close()
	err = q.Sync()
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("flushing a pipe: %v, want EINVAL", err)
	}
	if !r.broken || ringDone(t, r) != 1 {
		t.Fatalf("the ring ran %d flushes and broken=%v; want the one refused and the ring retired", ringDone(t, r), r.broken)
	}
}

func TestFlushResult(t *testing.T) {
	for _, c := range []struct {
		res    int32
		err    error
		broken bool
	}{
		{0, nil, false},
		{-int32(syscall.EIO), syscall.EIO, false},
		{-int32(syscall.ENOSPC), syscall.ENOSPC, false},
		{-int32(syscall.EINVAL), errRingUnusable, true},
		{-int32(syscall.EOPNOTSUPP), errRingUnusable, true},
		{-int32(syscall.ECANCELED), errRingUnusable, false},
		{-int32(syscall.EINTR), errRingUnusable, false},
	} {
		broken, err := flushResult(c.res)
		if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) || broken != c.broken {
			t.Errorf("flushResult(%d) = %v, %v; want %v, %v", c.res, broken, err, c.broken, c.err)
		}
	}
}

// TestClosedRingFlushesNothing: a flush after the file's close is not run
// on a ring whose memory is gone.
func TestClosedRingFlushesNothing(t *testing.T) {
	r, err := ringSetup()
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.fsync(f.Fd()); err != nil {
		t.Fatal(err)
	}
	r.close()
	r.close()
	if err := r.fsync(f.Fd()); !errors.Is(err, errRingUnusable) {
		t.Fatalf("fsync on a closed ring: %v", err)
	}
}
