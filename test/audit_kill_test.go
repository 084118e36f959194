package test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/test/harness"
)

// TestKillLosesNoAnsweredRequest kills -9 spuff-app while a shed's clients
// ping it as fast as they can, in each audit.durability: every ping that
// was answered has its line in the log.
func TestKillLosesNoAnsweredRequest(t *testing.T) {
	for _, mode := range []string{"batch", "fsync"} {
		t.Run(mode, func(t *testing.T) {
			h := harness.Start(t, harness.Options{Config: "audit:\n  durability: " + mode + "\nlimits:\n  requests_per_second: 100000\n  burst: 100000\n"})
			if !strings.Contains(h.Log(), "durability="+mode) {
				t.Fatalf("spuff-app did not open the audit log in %s mode:\n%s", mode, h.Log())
			}
			g := h.Guest(t, "crash")
			var answered atomic.Int64
			var wg sync.WaitGroup
			for range 4 {
				c := guestConn(t, g)
				wg.Go(func() {
					for c.Call(context.Background(), bus.NSAgent, bus.OpPing, nil, nil) == nil {
						answered.Add(1)
					}
				})
			}
			for answered.Load() < 300 {
				select {
				case <-h.Exited():
					t.Fatalf("spuff-app ended early:\n%s", h.Log())
				default:
				}
				time.Sleep(time.Millisecond)
			}
			h.Kill(t)
			wg.Wait()
			lines := len(h.FindAudit(t, pings("crash")))
			if int64(lines) < answered.Load() {
				t.Fatalf("%d pings answered, %d lines in the log after kill -9", answered.Load(), lines)
			}
			t.Logf("%s: %d answered, %d lines", mode, answered.Load(), lines)
		})
	}
}
