package bus

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

func dialUnix(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestNonReadingPeerIsClosedAndOnlyIt: a peer that floods pings and
// requests (more than may be in flight) and never reads its answers is
// closed soon, holding few goroutines and little memory meanwhile, and a
// second connection to the same server keeps being served.
func TestNonReadingPeerIsClosedAndOnlyIt(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	h := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		if r.Op == "block" {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		return json.RawMessage(r.Payload), nil
	})
	path, conns := serveUnix(t, h, Options{MaxInFlight: 8})

	healthyNC := dialUnix(t, path)
	healthySrv := <-conns
	healthy := NewConn(healthyNC, nil, Options{})
	defer healthy.Close()
	if err := healthy.Call(context.Background(), NSAgent, "echo", nil, nil); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	baseG := runtime.NumGoroutine()

	hostile := dialUnix(t, path)
	victim := <-conns
	var batch []byte
	for i := range 2000 {
		if i%2 == 0 {
			batch, _ = AppendFrame(batch, []byte(`{"v":1,"id":"`+NewID()+`","type":"ping"}`))
		} else {
			batch, _ = AppendFrame(batch, []byte(`{"v":1,"id":"`+NewID()+`","type":"request","ns":"agent","op":"block"}`))
		}
	}
	go func() {
		for {
			if _, err := hostile.Write(batch); err != nil {
				return
			}
		}
	}()

	maxG := 0
	var peak uint64
	deadline := time.After(5 * time.Second)
watch:
	for {
		select {
		case <-victim.Done():
			break watch
		case <-deadline:
			break watch
		case <-time.After(20 * time.Millisecond):
		}
		maxG = max(maxG, runtime.NumGoroutine()-baseG)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		if err := healthy.Call(context.Background(), NSAgent, "echo", nil, nil); err != nil {
			t.Fatalf("the healthy connection failed while another flooded: %v", err)
		}
	}
	select {
	case <-victim.Done():
	default:
		t.Errorf("the non-reading peer was not closed within 5s (%d goroutines held, heap %d MB)", maxG, peak>>20)
	}
	t.Logf("while flooding: at most %d goroutines more, heap %d MB (from %d MB)", maxG, peak>>20, before.HeapInuse>>20)
	if maxG > 100 {
		t.Errorf("the non-reading peer made the server hold %d goroutines", maxG)
	}
	if grown := int64(peak) - int64(before.HeapInuse); grown > 64<<20 {
		t.Errorf("the server's heap grew by %d MB for one non-reading peer", grown>>20)
	}
	if healthySrv.Err() != nil {
		t.Fatalf("the healthy connection was closed too: %v", healthySrv.Err())
	}
	if err := healthy.Call(context.Background(), NSAgent, "echo", nil, nil); err != nil {
		t.Fatalf("the healthy connection after the flood: %v", err)
	}
}

// noDeadlines hides a stream's deadlines, as the ssh:// stream has none.
type noDeadlines struct {
	net.Conn
}

func (n noDeadlines) Read(b []byte) (int, error)  { return n.Conn.Read(b) }
func (n noDeadlines) Write(b []byte) (int, error) { return n.Conn.Write(b) }
func (n noDeadlines) Close() error                { return n.Conn.Close() }

// TestBlockedWriteTimesOutWithoutDeadlines: on a stream without write
// deadlines, a peer that stops reading (and sends nothing more, so no queue
// overflows) is still closed once one write has blocked WriteTimeout.
func TestBlockedWriteTimesOutWithoutDeadlines(t *testing.T) {
	a, b := net.Pipe() // unbuffered: every write blocks until the peer reads
	defer b.Close()
	c := NewConn(struct {
		io.Reader
		io.Writer
		io.Closer
	}{noDeadlines{a}, noDeadlines{a}, noDeadlines{a}}, echo(), Options{WriteTimeout: 200 * time.Millisecond})
	if err := WriteEnvelope(b, &Envelope{V: Version, ID: NewID(), Type: TypePing}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a write blocked on a peer that does not read kept the connection open")
	}
	if !errors.Is(c.Err(), ErrNotReading) {
		t.Fatalf("closed with %v, want ErrNotReading", c.Err())
	}
}

// TestRefusalsGoToTheOwner: a request over MaxInFlight is answered by the
// Conn, after Options.Refused saw it, with the error Refused returned.
func TestRefusalsGoToTheOwner(t *testing.T) {
	block, started := make(chan struct{}), make(chan struct{}, 1)
	defer close(block)
	h := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		started <- struct{}{}
		<-block
		return nil, nil
	})
	var mu sync.Mutex
	var seen []string
	refused := func(r *Request, err *Error) *Error {
		mu.Lock()
		defer mu.Unlock()
		if err.Code != CodeRateLimited {
			t.Errorf("refused with %v", err)
		}
		seen = append(seen, r.ID)
		if len(seen) == 2 {
			return Errorf(CodeDenied, "no audit")
		}
		return nil
	}
	c1, _ := pipe(t, nil, h, Options{MaxInFlight: 1, CallTimeout: 5 * time.Second, Refused: refused})
	go c1.Call(context.Background(), NSAgent, "x", nil, nil) //nolint:errcheck // held by block
	<-started
	if err := c1.Call(context.Background(), NSAgent, "y", nil, nil); CodeOf(err) != CodeRateLimited {
		t.Fatalf("a request over the cap: %v", err)
	}
	id := NewID()
	err := c1.CallEnvelope(context.Background(), &Envelope{V: Version, ID: id, Type: TypeRequest, NS: NSAgent, Op: "z"}, nil)
	if CodeOf(err) != CodeDenied {
		t.Fatalf("second refusal answered %v, want the DENIED that Refused returned", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[1] != id {
		t.Fatalf("Refused saw %v", seen)
	}
}

// TestBigAnswersToAReaderAreNotRefused: a few answers near MaxFrame at once
// to a peer that reads them are written, not taken for a peer that does not
// read.
func TestBigAnswersToAReaderAreNotRefused(t *testing.T) {
	big := make([]byte, MaxFrame-1024)
	for i := range big {
		big[i] = 'a'
	}
	h := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		if r.Op == "big" {
			return string(big), nil
		}
		return nil, nil
	})
	c1, c2 := pipe(t, nil, h, Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var out string
			if err := c1.Call(context.Background(), NSAgent, "big", nil, &out); err != nil || len(out) != len(big) {
				t.Errorf("big answer: %d bytes, %v", len(out), err)
			}
		})
	}
	wg.Wait()
	if c2.Err() != nil {
		t.Fatalf("the serving side closed: %v", c2.Err())
	}
}
