package bus

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// socketIno is the inode of the socket under each conn quietPair made.
var socketIno = map[net.Conn]uint64{}

func inode(t *testing.T, c net.Conn) uint64 {
	t.Helper()
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := rc.Control(func(fd uintptr) { err = syscall.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// quietPair returns both ends of a unix socket, each a QuietConn.
func quietPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("unix", shortSock(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		acc <- c
	}()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	ca, cb := inode(t, c), inode(t, s)
	a, b = QuietConn(c), QuietConn(s)
	socketIno[a], socketIno[b] = ca, cb
	if _, ok := a.(*rawStream); !ok {
		t.Fatalf("QuietConn of a unix socket is a %T", a)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A write far bigger than the socket buffer waits for the reader (EAGAIN,
// then the poller) and arrives whole and in order.
func TestQuietConnBigWrite(t *testing.T) {
	a, b := quietPair(t)
	want := make([]byte, 8<<20)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		n, err := a.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got := make([]byte, 0, len(want))
	buf := make([]byte, 1000) // small reads, so the writer must wait
	for len(got) < len(want) {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes read differ from the bytes written")
	}
}

func TestQuietConnEOFAndClose(t *testing.T) {
	a, b := quietPair(t)
	// A reader waiting when its own side is closed returns at once.
	errc := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	b.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed conn: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting read")
	}
	// The peer sees EOF, then a write to a closed peer fails.
	if _, err := a.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
	var err error
	for range 10 {
		if _, err = a.Write([]byte("x")); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
}

func TestQuietConnDeadline(t *testing.T) {
	_, b := quietPair(t)
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := b.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
}

// outputWatches lists, from /proc/self/fdinfo, every epoll set of this
// process that watches the socket under c for output.
func outputWatches(t *testing.T, c net.Conn) []string {
	t.Helper()
	ino, ok := socketIno[c]
	if !ok {
		t.Fatal("not a conn from quietPair")
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 || f[0] != "tfd:" {
				continue
			}
			events, _ := strconv.ParseUint(f[3], 16, 32)
			tino, _ := strconv.ParseUint(strings.TrimPrefix(f[7], "ino:"), 16, 64)
			if tino == ino && events&syscall.EPOLLOUT != 0 {
				out = append(out, "epoll fd "+e.Name()+": "+line)
			}
		}
	}
	return out
}

// A unix socket signals "writable" each time its peer reads; a quiet
// socket is watched for input only, so those signals wake nobody.
func TestQuietConnIsNotWatchedForOutput(t *testing.T) {
	a, b := quietPair(t)
	for range 3 {
		if _, err := a.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, make([]byte, 4)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []net.Conn{a, b} {
		if w := outputWatches(t, c); len(w) > 0 {
			t.Errorf("the socket is watched for output: %v", w)
		}
	}
}

// A write waiting for room ends at its deadline, even one set while it
// waits, and stops watching for output; Close ends one too.
func TestQuietConnBlockedWrite(t *testing.T) {
	for _, end := range []string{"deadline", "close"} {
		t.Run(end, func(t *testing.T) {
			a, _ := quietPair(t) // nobody reads b
			errc := make(chan error, 1)
			go func() {
				_, err := a.Write(make([]byte, 64<<20))
				errc <- err
			}()
			time.Sleep(100 * time.Millisecond)
			select {
			case err := <-errc:
				t.Fatalf("a write bigger than any socket buffer returned with nobody reading: %v", err)
			default:
			}
			if end == "deadline" {
				a.SetWriteDeadline(time.Now())
			} else {
				a.Close()
			}
			select {
			case err := <-errc:
				want := os.ErrDeadlineExceeded
				if end == "close" {
					want = net.ErrClosed
				}
				if !errors.Is(err, want) {
					t.Fatalf("blocked write after its %s: %v, want %v", end, err, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the %s did not end a blocked write", end)
			}
			if end == "deadline" {
				if w := outputWatches(t, a); len(w) > 0 {
					t.Errorf("still watched for output after the write ended: %v", w)
				}
				if _, err := a.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("a write past its deadline: %v", err)
				}
			}
		})
	}
}
