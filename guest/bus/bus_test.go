package bus

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func pipe(t *testing.T, h1, h2 Handler, opts Options) (*Conn, *Conn) {
	t.Helper()
	a, b := net.Pipe()
	c1 := NewConn(a, h1, opts)
	c2 := NewConn(b, h2, opts)
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

func echo() Handler {
	return HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		if r.Op == "fail" {
			return nil, Errorf(CodeNotAllowed, "no %s", "way")
		}
		return json.RawMessage(r.Payload), nil
	})
}

func TestIDTime(t *testing.T) {
	id := NewID()
	ts, err := IDTime(id)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(ts); d < -time.Second || d > time.Second {
		t.Fatalf("v7 time %v is %v away from now", ts, d)
	}
	for _, bad := range []string{"", "nope", "6ba7b810-9dad-11d1-80b4-00c04fd430c8" /* v1 */, "f47ac10b-58cc-4372-a567-0e02b2c3d479" /* v4 */, strings.Repeat("a", 36)} {
		if _, err := IDTime(bad); err == nil {
			t.Errorf("IDTime(%q) accepted a non-v7 id", bad)
		}
	}
}

func TestCallBothDirections(t *testing.T) {
	c1, c2 := pipe(t, echo(), echo(), Options{})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(2)
		for _, c := range []*Conn{c1, c2} {
			go func() {
				defer wg.Done()
				var out map[string]int
				if err := c.Call(context.Background(), NSAgent, "echo", map[string]int{"n": i}, &out); err != nil {
					t.Error(err)
					return
				}
				if out["n"] != i {
					t.Errorf("got %v, want n=%d: responses crossed", out, i)
				}
			}()
		}
	}
	wg.Wait()
}

func TestCallCarriesWireError(t *testing.T) {
	c1, _ := pipe(t, nil, echo(), Options{})
	err := c1.Call(context.Background(), NSAgent, "fail", nil, nil)
	if CodeOf(err) != CodeNotAllowed {
		t.Fatalf("got %v, want NOT_ALLOWED", err)
	}
}

func TestProgressExtendsDeadline(t *testing.T) {
	slow := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		for range 4 {
			time.Sleep(100 * time.Millisecond)
			if err := r.Progress("asking a human"); err != nil {
				return nil, err
			}
		}
		return map[string]bool{"ok": true}, nil
	})
	c1, _ := pipe(t, nil, slow, Options{CallTimeout: 250 * time.Millisecond, MaxWait: 2 * time.Second})
	var notes []string
	req := &Envelope{V: Version, ID: NewID(), Type: TypeRequest, NS: NSAgent, Op: "slow"}
	if err := c1.CallProgress(context.Background(), req, nil, func(n string) { notes = append(notes, n) }); err != nil {
		t.Fatalf("a call kept alive by progress failed: %v", err)
	}
	if len(notes) == 0 || notes[0] != "asking a human" {
		t.Fatalf("progress notes not relayed: %q", notes)
	}
}

func TestNoProgressTimesOut(t *testing.T) {
	silent := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	c1, _ := pipe(t, nil, silent, Options{CallTimeout: 100 * time.Millisecond})
	err := c1.Call(context.Background(), NSAgent, "x", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
}

func TestMaxWaitCapsProgress(t *testing.T) {
	forever := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		for {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
				_ = r.Progress("")
			}
		}
	})
	c1, _ := pipe(t, nil, forever, Options{CallTimeout: 100 * time.Millisecond, MaxWait: 300 * time.Millisecond})
	start := time.Now()
	err := c1.Call(context.Background(), NSAgent, "x", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("progress extended the call past MaxWait")
	}
}

func TestPingPong(t *testing.T) {
	c1, _ := pipe(t, nil, nil, Options{})
	if _, err := c1.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAliveClosesSilentPeer(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go func() { // a peer that reads but never answers
		buf := make([]byte, 4096)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	c := NewConn(a, nil, Options{KeepAlive: 30 * time.Millisecond, CallTimeout: 20 * time.Millisecond})
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("keepalive did not close a silent connection")
	}
}

func TestBadFramesCloseOnlyThatConn(t *testing.T) {
	for name, raw := range map[string][]byte{
		"oversized": binary.BigEndian.AppendUint32(nil, MaxFrame+1),
		"malformed": append(binary.BigEndian.AppendUint32(nil, 5), "{nope"...),
		"wrong v":   mustFrame(`{"v":2,"id":"x","type":"ping"}`),
		"bad type":  mustFrame(`{"v":1,"id":"x","type":"shout"}`),
		"empty":     binary.BigEndian.AppendUint32(nil, 0),
	} {
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			victim := NewConn(a, echo(), Options{})
			other, _ := pipe(t, nil, echo(), Options{})
			go b.Write(raw)
			select {
			case <-victim.Done():
			case <-time.After(2 * time.Second):
				t.Fatal("a bad frame did not close the connection")
			}
			if victim.Err() == nil || errors.Is(victim.Err(), ErrClosed) {
				t.Fatalf("no reason recorded: %v", victim.Err())
			}
			if err := other.Call(context.Background(), NSAgent, "echo", map[string]int{"n": 1}, nil); err != nil {
				t.Fatalf("another connection was disturbed: %v", err)
			}
			b.Close()
		})
	}
}

func mustFrame(s string) []byte {
	b, _ := AppendFrame(nil, []byte(s))
	return b
}

func TestUnknownFieldsIgnored(t *testing.T) {
	e, err := DecodeEnvelope([]byte(`{"v":1,"id":"a","type":"request","ns":"agent","op":"ping","shed":"victim","payload":{"shed":"victim"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.NS != "agent" || e.Op != "ping" {
		t.Fatalf("decoded %+v", e)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := &Envelope{V: Version, ID: NewID(), Type: TypeRequest, NS: NSSSHAgent, Op: OpSign, Payload: json.RawMessage(`{"key":"AA=="}`)}
	if err := WriteEnvelope(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadEnvelope(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Op != in.Op || string(out.Payload) != string(in.Payload) {
		t.Fatalf("round trip changed the envelope: %+v", out)
	}
	if _, err := AppendFrame(nil, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("encoding an oversized frame: %v", err)
	}
}

func TestInFlightCap(t *testing.T) {
	block := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		<-block
		return nil, nil
	})
	c1, _ := pipe(t, nil, h, Options{MaxInFlight: 2, CallTimeout: 5 * time.Second})
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- c1.Call(context.Background(), NSAgent, "x", nil, nil) }()
	}
	if err := <-errs; CodeOf(err) != CodeRateLimited {
		t.Fatalf("third concurrent request: got %v, want RATE_LIMITED", err)
	}
	close(block)
	<-errs
	<-errs
}

func TestParseTarget(t *testing.T) {
	good := map[string]string{
		"unix:///run/spuff/bus.sock": "unix:///run/spuff/bus.sock",
		"ssh://dev@10.0.0.5":         "ssh://dev@10.0.0.5:22",
		"ssh://dev@[::1]:2222":       "ssh://dev@[::1]:2222",
		"vsock://3:7000":             "vsock://3:7000",
	}
	for in, want := range good {
		tg, err := ParseTarget(in)
		if err != nil || tg.String() != want {
			t.Errorf("ParseTarget(%q) = %q, %v; want %q", in, tg.String(), err, want)
		}
	}
	for _, bad := range []string{"unix://rel/path", "ssh://host", "ssh://u:pw@host", "vsock://x:1", "tcp://1.2.3.4:5", "ssh://u@"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted a bad address", bad)
		}
	}
}

// A relay (caller → relay → upstream) passes the upstream's payload through as
// raw JSON; a raw payload that is not JSON is answered with INTERNAL, not
// left unanswered.
func TestRawPayloadRelay(t *testing.T) {
	upstream, _ := pipe(t, nil, HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		if r.Op == "bad" {
			return json.RawMessage(`{"unterminated`), nil
		}
		return map[string]any{"keys": []int{1, 2}, "note": "é<&>"}, nil
	}), Options{})
	relayH := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		var out json.RawMessage
		if err := upstream.CallEnvelope(ctx, &Envelope{V: Version, ID: NewID(), Type: TypeRequest, NS: r.NS, Op: r.Op}, &out); err != nil {
			return nil, err
		}
		return out, nil
	})
	caller, _ := pipe(t, nil, relayH, Options{})
	var got struct {
		Keys []int
		Note string
	}
	if err := caller.Call(context.Background(), NSAgent, "good", nil, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 2 || got.Note != "é<&>" {
		t.Fatalf("relayed payload: %+v", got)
	}
	err := caller.Call(context.Background(), NSAgent, "bad", nil, nil)
	var be *Error
	if !errors.As(err, &be) || be.Code != CodeInternal {
		t.Fatalf("a bad raw payload: %v, want an INTERNAL answer", err)
	}
}
