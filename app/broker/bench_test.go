package broker

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/test/testenv"
)

type discardAudit struct{}

func (discardAudit) Write(context.Context, audit.Record) error { return nil }

// BenchmarkPipeline splits a guest→host ping into its parts, in one run:
// the bus alone (a pong frame), the whole pipeline with an audit log that
// keeps nothing, and the whole pipeline with the real fsync'd log. The gap
// between the last two is the price of durable audit on this disk.
func BenchmarkPipeline(b *testing.B) {
	run := func(b *testing.B, aud Auditor) (raw, full []time.Duration) {
		dir, _ := os.MkdirTemp("", "spb")
		defer os.RemoveAll(dir)
		sock := filepath.Join(dir, "bus.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		conns := make(chan *bus.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- bus.NewConn(c, bus.HandlerFunc(func(ctx context.Context, r *bus.Request) (any, error) {
				return bus.HelloResponse{Version: bus.Version}, nil
			}), bus.Options{})
		}()
		cfg := config.Default()
		cfg.Limits = config.Limits{RequestsPerSecond: 1e9, Burst: 1 << 30}
		br, err := New(Options{Config: cfg, Audit: aud, Dial: func(ctx context.Context, u string) (io.ReadWriteCloser, error) {
			return bus.Dial(ctx, u, nil)
		}})
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		if err := br.Attach("bench", "unix://"+sock); err != nil {
			b.Fatal(err)
		}
		g := <-conns
		defer g.Close()
		for br.Sheds()[0].State != api.StateConnected {
			time.Sleep(time.Millisecond)
		}
		const n = 2000
		for range n {
			start := time.Now()
			if _, err := g.Ping(context.Background()); err != nil {
				b.Fatal(err)
			}
			raw = append(raw, time.Since(start))
			start = time.Now()
			if err := g.Call(context.Background(), bus.NSAgent, bus.OpPing, nil, nil); err != nil {
				b.Fatal(err)
			}
			full = append(full, time.Since(start))
		}
		return raw, full
	}
	for range b.N {
		raw, noAudit := run(b, discardAudit{})
		w, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), nil)
		if err != nil {
			b.Fatal(err)
		}
		_, fsynced := run(b, w)
		w.Close()
		rawP50, _ := testenv.Percentiles(raw)
		noAuditP50, _ := testenv.Percentiles(noAudit)
		fsyncP50, _ := testenv.Percentiles(fsynced)
		b.ReportMetric(rawP50, "bus-pong-p50-µs")
		b.ReportMetric(noAuditP50, "pipeline-no-audit-p50-µs")
		b.ReportMetric(fsyncP50, "pipeline-fsync-audit-p50-µs")
	}
}
