package test

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestRelayFloorHelper is not a test: BenchmarkPing runs this binary as the
// relay and as the echo of the two-process floor (client → relay → echo).
func TestRelayFloorHelper(t *testing.T) {
	mode := os.Getenv("SPUFF_FLOOR")
	if mode == "" {
		t.Skip("helper process for BenchmarkPing")
	}
	l, err := net.Listen("unix", os.Getenv("SPUFF_FLOOR_LISTEN"))
	if err != nil {
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(0)
		}
		if mode == "echo" {
			go copyFrames(c, c)
			continue
		}
		up, err := net.Dial("unix", os.Getenv("SPUFF_FLOOR_UPSTREAM"))
		if err != nil {
			os.Exit(1)
		}
		go copyFrames(up, c)
		go copyFrames(c, up)
	}
}

// copyFrames reads frames from src and writes each to dst, as the guest
// relays them.
func copyFrames(dst io.Writer, src io.Reader) {
	var buf, out []byte
	for {
		body, err := bus.ReadFrame(src, buf)
		if err != nil {
			return
		}
		buf = body[:0]
		out, _ = bus.AppendFrame(out[:0], body)
		if _, err := dst.Write(out); err != nil {
			return
		}
	}
}

// relayFloorConn is a connection to the floor of the audited ping's path:
// a relay process in front of an echo process, with no bus, broker or
// audit in the way.
func relayFloorConn(b *testing.B) net.Conn {
	b.Helper()
	dir := harness.ShortTempDir(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	start := func(mode, listen, upstream string) {
		cmd := exec.Command(self, "-test.run", "^TestRelayFloorHelper$")
		cmd.Env = append(os.Environ(), "SPUFF_FLOOR="+mode, "SPUFF_FLOOR_LISTEN="+listen, "SPUFF_FLOOR_UPSTREAM="+upstream)
		p := testenv.MustStartProcess(b, "floor-"+mode, cmd)
		if err := p.WaitReady(10*time.Second, testenv.Dialable("unix", listen)); err != nil {
			b.Fatal(err)
		}
	}
	echo, relay := filepath.Join(dir, "echo.sock"), filepath.Join(dir, "relay.sock")
	start("echo", echo, "")
	start("relay", relay, echo)
	c, err := net.Dial("unix", relay)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// pingFrame is a fresh audited ping request, framed.
func pingFrame() []byte {
	req, _ := bus.EncodeEnvelope(&bus.Envelope{V: bus.Version, ID: bus.NewID(), Type: bus.TypeRequest, NS: bus.NSAgent, Op: bus.OpPing})
	return req
}

// frameRoundTrips sends n request frames on c and times each answer,
// read straight off the socket. next makes each request outside the
// timing; check, if set, sees each answer's body after it.
func frameRoundTrips(b *testing.B, c net.Conn, n int, next func() []byte, check func(body []byte)) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, n)
	var hdr [4]byte
	var buf []byte
	for range n {
		req := next()
		start := time.Now()
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			b.Fatal(err)
		}
		size := int(binary.BigEndian.Uint32(hdr[:]))
		buf = slices.Grow(buf[:0], size)[:size]
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
		if check != nil {
			check(buf)
		}
	}
	return out
}

// echoes times a ping-sized frame echoed n times on c.
func echoes(b *testing.B, c net.Conn, n int) []time.Duration {
	req := pingFrame()
	return frameRoundTrips(b, c, n, func() []byte { return req }, nil)
}

// framePings times n audited pings sent on c, a guest's bus socket, by the
// floor's own client (frameRoundTrips), each a fresh request, so the
// client adds no goroutine hand-off the floor's does not. An answer that
// is an error fails.
func framePings(b *testing.B, c net.Conn, n int) []time.Duration {
	return frameRoundTrips(b, c, n, pingFrame, func(body []byte) {
		e, err := bus.DecodeEnvelope(body)
		if err != nil || e.Error != nil || e.Type != bus.TypeResponse {
			b.Fatalf("ping answered %+v, %v", e, err)
		}
	})
}
