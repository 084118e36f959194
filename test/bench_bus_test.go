package test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// guestConn opens a bus connection to the guest daemon's guest.sock, the
// way a one-shot tool in the shed does.
func guestConn(b testing.TB, g *harness.Guest) *bus.Conn {
	b.Helper()
	nc, err := net.Dial("unix", filepath.Join(g.RunDir, "guest.sock"))
	if err != nil {
		b.Fatal(err)
	}
	c := bus.NewConn(nc, nil, bus.Options{CallTimeout: 10 * time.Second})
	b.Cleanup(func() { c.Close() })
	return c
}

func samplePings(b *testing.B, c *bus.Conn, n int) []time.Duration {
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := c.Call(context.Background(), bus.NSAgent, bus.OpPing, nil, nil); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// rawEchoConn is a connection to the floor: a unix-socket echo of frames
// in this process, with no bus, broker or audit in the way.
func rawEchoConn(b *testing.B) net.Conn {
	dir := harness.ShortTempDir(b)
	l, err := net.Listen("unix", filepath.Join(dir, "echo.sock"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			body, err := bus.ReadFrame(c, nil)
			if err != nil {
				return
			}
			frame, _ := bus.AppendFrame(nil, body)
			if _, err := c.Write(frame); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkPing: an audited ping from the shed to the broker and back, over
// the unix and ssh transports, beside a raw unix-socket echo and the
// two-process relay floor (client → relay → echo, the hops an audited
// ping over unix makes), all interleaved in one run. Every ping writes its
// audit line before it is answered. Over unix the ping is timed twice:
// sent by the floor's own client (the goal's figure), and called through
// a bus.Conn as the shed's daemon calls, whose reader hands each answer
// to the caller's goroutine.
func BenchmarkPing(b *testing.B) {
	const n = 2000
	home := harness.ShortTempDir(b)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		b.Fatal(err)
	}
	_, pub := testenv.KeyPair(b, filepath.Join(home, ".ssh"), "id_ed25519", "ed25519")
	h := harness.Start(b, harness.Options{Config: "limits:\n  requests_per_second: 100000\n  burst: 100000\n", Env: map[string]string{"HOME": home}})
	viaUnix := h.Guest(b, "bench-unix")
	viaSSH := h.Guest(b, "bench-ssh", harness.GuestOptions{NoAttach: true})
	guestBin := testenv.GoBinary(b, "./guest/cmd/spuff-guest")
	sshd := testenv.StartSSHD(b, `command="`+guestBin+` bus-stdio --run-dir `+viaSSH.RunDir+`" `+pub+"\n")
	h.MustSpuff(b, "attach", "bench-ssh", "ssh://root@"+sshd.Addr)
	h.WaitState(b, "bench-ssh", "connected")

	raw, err := net.Dial("unix", filepath.Join(viaUnix.RunDir, "guest.sock"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	echo, relay := rawEchoConn(b), relayFloorConn(b)
	unix, ssh := guestConn(b, viaUnix), guestConn(b, viaSSH)
	paths := []timed{
		timedFunc(func(n int) []time.Duration { return echoes(b, echo, n) }),
		timedFunc(func(n int) []time.Duration { return echoes(b, relay, n) }),
		timedFunc(func(n int) []time.Duration { return framePings(b, raw, n) }),
		timedFunc(func(n int) []time.Duration { return samplePings(b, unix, n) }),
		timedFunc(func(n int) []time.Duration { return samplePings(b, ssh, n) }),
	}
	b.ResetTimer()
	for range b.N {
		d := interleaved(b, n, paths...)
		floor50 := testenv.ReportPercentiles(b, "floor", d[0])
		relay50 := testenv.ReportPercentiles(b, "relay-floor", d[1])
		u50 := testenv.ReportPercentiles(b, "unix", d[2])
		c50 := testenv.ReportPercentiles(b, "unix-bus-client", d[3])
		s50 := testenv.ReportPercentiles(b, "ssh", d[4])
		b.ReportMetric(u50/floor50, "unix/floor")
		// The goal's ratio: the same client, the same frames, on both paths.
		b.ReportMetric(u50/relay50, "unix/relay-floor")
		b.ReportMetric(c50/relay50, "unix-bus-client/relay-floor")
		b.ReportMetric(s50/floor50, "ssh/floor")
	}
}

// BenchmarkAuditedThroughput: requests/s through the whole pipeline with
// the audit log fsync'd before each answer, 10 sheds × 10 clients at once.
func BenchmarkAuditedThroughput(b *testing.B) {
	h := harness.Start(b, harness.Options{Config: "limits:\n  requests_per_second: 100000\n  burst: 100000\n"})
	var guests []*harness.Guest
	for i := range 10 {
		guests = append(guests, h.Guest(b, "tp-"+string(rune('a'+i))))
	}
	const perClient = 200
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs int
		start := time.Now()
		for _, g := range guests {
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := guestConn(b, g)
					for range perClient {
						if err := c.Call(context.Background(), bus.NSAgent, bus.OpPing, nil, nil); err != nil {
							mu.Lock()
							errs++
							mu.Unlock()
						}
					}
				}()
			}
		}
		wg.Wait()
		el := time.Since(start)
		b.ReportMetric(float64(100*perClient)/el.Seconds(), "audited-req/s")
		b.ReportMetric(float64(errs), "errors")
	}
}
