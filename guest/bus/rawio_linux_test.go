package bus

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

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
	a, b = QuietConn(c), QuietConn(s)
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
