package harness

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// Hostile is a shed that speaks raw bus frames, as root in a compromised
// shed could: the broker dials it like any shed, it answers hello, and then
// it floods requests, stops reading its answers, or sends fields of any
// size. Each connection the broker makes is served the same way, so a
// broker that drops it and redials meets the same shed again.
type Hostile struct {
	Path string
	l    net.Listener

	mu      sync.Mutex
	conns   []net.Conn
	ready   chan net.Conn
	paused  atomic.Bool
	answers sync.Map // id → code ("" for ok) of every answer read
	read    atomic.Int64
}

// NewHostile listens where the broker will dial it (unix://Hostile.URL()).
func NewHostile(t testing.TB) *Hostile {
	t.Helper()
	h := &Hostile{Path: filepath.Join(ShortTempDir(t), "bus.sock"), ready: make(chan net.Conn, 16)}
	l, err := net.Listen("unix", h.Path)
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	t.Cleanup(func() {
		l.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			go h.serve(c)
		}
	}()
	return h
}

// URL is the address to attach.
func (h *Hostile) URL() string { return "unix://" + h.Path }

// serve answers hello and records every answer it reads, until paused.
func (h *Hostile) serve(c net.Conn) {
	var buf []byte
	for {
		if h.paused.Load() {
			return // stop reading: the broker's answers pile up
		}
		body, err := bus.ReadFrame(c, buf)
		if err != nil {
			return
		}
		buf = body[:0]
		e, err := bus.DecodeEnvelope(body)
		if err != nil {
			return
		}
		switch {
		case e.Type == bus.TypeRequest && e.Op == bus.OpHello:
			p, _ := json.Marshal(bus.HelloResponse{Version: bus.Version, GuestVersion: "hostile", Namespaces: bus.Namespaces()})
			_ = bus.WriteEnvelope(c, &bus.Envelope{V: bus.Version, ID: e.ID, Type: bus.TypeResponse, Payload: p})
			select {
			case h.ready <- c:
			default:
			}
		case e.Type == bus.TypePing:
			_ = bus.WriteEnvelope(c, &bus.Envelope{V: bus.Version, ID: e.ID, Type: bus.TypePong})
		case e.Type == bus.TypeResponse:
			code := ""
			if e.Error != nil {
				code = e.Error.Code
			}
			h.answers.Store(e.ID, code)
			h.read.Add(1)
		}
	}
}

// Conn waits up to d for the broker's next connection that has said
// hello; nil if none came.
func (h *Hostile) Conn(d time.Duration) net.Conn {
	select {
	case c := <-h.ready:
		return c
	case <-time.After(d):
		return nil
	}
}

// StopReading makes every connection stop reading after its current frame.
func (h *Hostile) StopReading() { h.paused.Store(true) }

// Answers returns the ids and codes of every answer read so far.
func (h *Hostile) Answers() map[string]string {
	out := map[string]string{}
	h.answers.Range(func(k, v any) bool {
		out[k.(string)] = v.(string)
		return true
	})
	return out
}

// Ask writes the request e on c and waits up to d for its answer, which it
// returns with ok; an earlier answer to the same id is forgotten first, so
// a request sent again is answered afresh.
func (h *Hostile) Ask(c net.Conn, e *bus.Envelope, d time.Duration) (code string, ok bool) {
	h.answers.Delete(e.ID)
	_ = c.SetWriteDeadline(time.Now().Add(d))
	if err := bus.WriteEnvelope(c, e); err != nil {
		return "", false
	}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if v, ok := h.answers.Load(e.ID); ok {
			return v.(string), true
		}
	}
	return "", false
}

// Flood writes n ping requests with fresh ids as fast as the socket takes
// them, batched into large writes; it stops at the first write error (the
// broker closed the connection) and returns how many it wrote.
func Flood(c net.Conn, n int) int {
	const batch = 256
	var buf []byte
	sent := 0
	for sent < n {
		buf = buf[:0]
		for i := 0; i < batch && sent+i < n; i++ {
			b, _ := bus.EncodeEnvelope(&bus.Envelope{V: bus.Version, ID: bus.NewID(), Type: bus.TypeRequest, NS: bus.NSAgent, Op: bus.OpPing})
			buf = append(buf, b...)
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(buf); err != nil {
			return sent
		}
		sent += min(batch, n-sent)
	}
	return sent
}

// Oversized writes n requests whose ns, op and id are size bytes long (or
// as long as the envelope allows), cycling through which field is big.
func Oversized(c net.Conn, n, size int) int {
	big := strings.Repeat("\x1b]0;x", size/5+1)[:size]
	for i := range n {
		e := &bus.Envelope{V: bus.Version, ID: bus.NewID(), Type: bus.TypeRequest, NS: bus.NSAgent, Op: bus.OpPing}
		switch i % 3 {
		case 0:
			e.NS = big
		case 1:
			e.Op = big
		case 2:
			e.NS, e.Op = bus.NSSSHAgent, big
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := bus.WriteEnvelope(c, e); err != nil {
			return i
		}
	}
	return n
}
