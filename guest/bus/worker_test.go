package bus

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// goroutineID is the running goroutine's number, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf)
	if len(f) < 2 {
		return ""
	}
	return string(f[1])
}

// TestRequestsReuseServingGoroutines: one request after another is served
// by the few parked workers, not by a new goroutine each (whose stack
// would grow again for every request); a burst leaves at most
// maxIdleWorkers of them parked.
func TestRequestsReuseServingGoroutines(t *testing.T) {
	var mu sync.Mutex
	servers := map[string]int{}
	gate := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, r *Request) (any, error) {
		mu.Lock()
		servers[goroutineID()]++
		mu.Unlock()
		if r.Op == "wait" {
			<-gate
		}
		return nil, nil
	})
	c1, _ := pipe(t, nil, h, Options{})
	const n = 200
	for range n {
		if err := c1.Call(context.Background(), NSAgent, "x", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	distinct := len(servers)
	mu.Unlock()
	if distinct > maxIdleWorkers+1 {
		t.Fatalf("%d requests one after another were served by %d goroutines, want at most %d", n, distinct, maxIdleWorkers+1)
	}

	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if err := c1.Call(context.Background(), NSAgent, "wait", nil, nil); err != nil {
				t.Error(err)
			}
		})
	}
	for {
		mu.Lock()
		total := 0
		for _, k := range servers {
			total += k
		}
		mu.Unlock()
		if total >= n+64 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+maxIdleWorkers && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := runtime.NumGoroutine() - base; got > maxIdleWorkers {
		t.Fatalf("%d more goroutines once a burst of 64 was served, want at most %d parked workers", got, maxIdleWorkers)
	}
}

// TestIdleConnHoldsNoGoroutines: once a connection is quiet for
// workerIdle, its parked workers have ended, and between its monitor's
// looks it holds only its read loop.
func TestIdleConnHoldsNoGoroutines(t *testing.T) {
	old := workerIdle
	workerIdle = 50 * time.Millisecond
	defer func() { workerIdle = old }()
	base := runtime.NumGoroutine()
	c1, _ := pipe(t, nil, HandlerFunc(func(ctx context.Context, r *Request) (any, error) { return nil, nil }), Options{KeepAlive: time.Hour})
	for range 20 {
		if err := c1.Call(context.Background(), NSAgent, "x", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Two Conns (both ends of the pipe), one read loop each.
	if got := runtime.NumGoroutine() - base; got > 2 {
		t.Fatalf("%d goroutines for two quiet Conns, want 2 (their read loops)", got)
	}
}
