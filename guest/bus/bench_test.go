package bus

import (
	"context"
	"net"
	"testing"
)

// BenchmarkConnRoundTrip is one Call at a time between two Conns over a
// real unix socket, the handler answering at once. Beside it,
// BenchmarkUnixEchoFloor is the same frames echoed by a bare loop: what one
// round trip between two goroutines costs with nothing of the bus in it.
func BenchmarkConnRoundTrip(b *testing.B) {
	roundTrips(b, echo())
}

// BenchmarkConnRoundTripDeepHandler is BenchmarkConnRoundTrip with a
// handler that needs a grown stack, as the broker's pipeline does (decode,
// audit encode, reply encode): what serving a request costs on a goroutine
// whose stack must grow first.
func BenchmarkConnRoundTripDeepHandler(b *testing.B) {
	roundTrips(b, HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		return nil, deep(64)
	}))
}

// roundTrips times Calls, one at a time, to a Conn served by h.
func roundTrips(b *testing.B, h Handler) {
	path, conns := serveUnix(b, h, Options{})
	nc, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	c := NewConn(nc, nil, Options{})
	defer c.Close()
	defer func() { (<-conns).Close() }()
	for b.Loop() {
		if err := c.Call(context.Background(), NSAgent, "echo", nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// deep uses about n × 256 bytes of stack.
//
//go:noinline
func deep(n int) error {
	var pad [256]byte
	if n == 0 {
		return nil
	}
	pad[n%256] = byte(n)
	if err := deep(n - 1); err != nil || pad[0] == 1 {
		return err
	}
	return nil
}

func BenchmarkUnixEchoFloor(b *testing.B) {
	path := shortSock(b)
	l, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		sc, err := l.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		var buf []byte
		for {
			body, err := ReadFrame(sc, buf)
			if err != nil {
				return
			}
			out, _ := AppendFrame(nil, body)
			if _, err := sc.Write(out); err != nil {
				return
			}
			buf = body[:0]
		}
	}()
	nc, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	frame, err := EncodeEnvelope(&Envelope{V: Version, ID: NewID(), Type: TypeRequest, NS: NSAgent, Op: "echo"})
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	for b.Loop() {
		if _, err := nc.Write(frame); err != nil {
			b.Fatal(err)
		}
		if buf, err = ReadFrame(nc, buf); err != nil {
			b.Fatal(err)
		}
	}
}
