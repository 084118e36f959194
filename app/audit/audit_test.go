package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

var ts = time.Date(2026, 3, 31, 15, 4, 5, 987654321, time.UTC)

func TestLineFormatIsExact(t *testing.T) {
	for _, c := range []struct {
		r    Record
		want string
	}{
		{
			Record{TS: ts, Shed: "my-service", NS: "ssh-agent", Op: "sign", Result: "ok", Detail: "ssh-ed25519 SHA256:abc"},
			`{"ts":"2026-03-31T15:04:05Z","shed":"my-service","ns":"ssh-agent","op":"sign","result":"ok","detail":"ssh-ed25519 SHA256:abc","approval":"none"}`,
		},
		{
			// Any zone is written as UTC; extras follow the seven fields.
			Record{TS: ts.In(time.FixedZone("x", 3600)), Shed: "s", NS: "n", Op: "o", Result: "denied", Approval: "cli", ID: "id1", Code: "DENIED", Detail: "a\nb\r\x00\u2028"},
			`{"ts":"2026-03-31T15:04:05Z","shed":"s","ns":"n","op":"o","result":"denied","detail":"a\nb\r\u0000\u2028","approval":"cli","id":"id1","code":"DENIED"}`,
		},
		{
			// Empty fields are still written: a line always has all seven.
			Record{TS: ts},
			`{"ts":"2026-03-31T15:04:05Z","shed":"","ns":"","op":"","result":"","detail":"","approval":"none"}`,
		},
	} {
		b, err := json.Marshal(c.r)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("line\n %s\nwant\n %s", b, c.want)
		}
		line, err := c.r.line()
		if err != nil {
			t.Fatal(err)
		}
		if string(line) != c.want+"\n" || bytes.Count(line, []byte("\n")) != 1 {
			t.Errorf("written line %q", line)
		}
	}
}

// A counted line answers many requests: its count, the first of their ids
// and the range all of them fall in follow the documented fields, read
// back whole, and say which requests the line answers.
func TestCountedLine(t *testing.T) {
	const (
		a = "019ad5a0-0000-7000-8000-000000000001"
		b = "019ad5a0-0000-7000-8000-000000000002"
		c = "019ad5a0-0000-7000-8000-000000000009"
	)
	r := Record{TS: ts, Shed: "s", NS: "agent", Op: "ping", Result: "denied", Detail: "rate limit", Code: "RATE_LIMITED",
		Count: 9, IDs: []string{a, b}, IDRange: [2]string{a, c}}
	line, err := r.line()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ts":"2026-03-31T15:04:05Z","shed":"s","ns":"agent","op":"ping","result":"denied","detail":"rate limit","approval":"none","code":"RATE_LIMITED","count":9,"ids":["` + a + `","` + b + `"],"id_range":["` + a + `","` + c + `"]}` + "\n"
	if string(line) != want {
		t.Fatalf("line\n %s\nwant\n %s", line, want)
	}
	var back Record
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if back.Count != 9 || len(back.IDs) != 2 || back.IDRange != r.IDRange || back.Requests() != 9 {
		t.Fatalf("read back %+v", back)
	}
	for id, want := range map[string]bool{
		a: true, b: true, c: true,
		"019ad5a0-0000-7000-8000-000000000005": true,  // within the range
		"019ad5a0-0000-7000-8000-00000000000a": false, // past it
		"019ad59f-ffff-7fff-bfff-ffffffffffff": false, // before it
		"":                                     false,
	} {
		if got := back.Answers(id); got != want {
			t.Errorf("Answers(%q) = %v, want %v", id, got, want)
		}
	}
	one := Record{TS: ts, ID: a}
	if one.Requests() != 1 || !one.Answers(a) || one.Answers(b) {
		t.Errorf("a plain line answers its own id alone: %d requests", one.Requests())
	}
	// Only its ids: no range is needed when they are all listed.
	listed := Record{TS: ts, Count: 2, IDs: []string{a, c}}
	if listed.Requests() != 2 || !listed.Answers(c) || listed.Answers(b) {
		t.Errorf("a counted line with every id listed answers just those")
	}
}

func TestLineKeepsHTMLReadable(t *testing.T) {
	line, err := Record{TS: ts, Detail: "git@host:a->b & <c>"}.line()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(line, []byte(`"detail":"git@host:a->b & <c>"`)) {
		t.Fatalf("line %s", line)
	}
}

func TestOverlongDetailIsTruncatedWithMarker(t *testing.T) {
	for _, detail := range []string{
		strings.Repeat("x", 3*MaxLine),
		strings.Repeat("\x01", MaxLine),       // escapes to six bytes each
		strings.Repeat("é", MaxLine/2+10),     // multi-byte runes: no cut inside one
		strings.Repeat("a", MaxLine-100) + "", // just over once encoded
	} {
		r := Record{TS: ts, Shed: "s", NS: "ssh-agent", Op: "sign", Result: "ok", Detail: detail}
		line, err := r.line()
		if err != nil {
			t.Fatal(err)
		}
		if len(line) > MaxLine {
			t.Fatalf("line of %d bytes", len(line))
		}
		var back Record
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatal(err)
		}
		if len(detail)+200 > MaxLine && !strings.HasSuffix(back.Detail, truncated) {
			t.Errorf("detail of %d bytes cut without the marker", len(detail))
		}
		if !utf8.ValidString(back.Detail) || !strings.HasPrefix(detail, strings.TrimSuffix(back.Detail, truncated)) {
			t.Errorf("truncated detail is not a prefix of the original")
		}
	}
	// Only the detail is cut; a record too big without it is refused.
	if _, err := (Record{TS: ts, Op: strings.Repeat("o", MaxLine)}).line(); err == nil {
		t.Fatal("an oversized op was written")
	}
}

func TestOpenModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "share", "shed")
	p := filepath.Join(dir, "extensions-audit.log")
	w, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), Record{TS: ts, Shed: "s", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Dir(dir): 0o700, p: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
	// A loosened file is tightened on open, with a warning, and keeps its lines.
	for _, loose := range []os.FileMode{0o644, 0o660, 0o606} {
		if err := os.Chmod(p, loose); err != nil {
			t.Fatal(err)
		}
		var logBuf bytes.Buffer
		w, err = Open(p, slogTo(&logBuf))
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %04o after opening a %04o file", fi.Mode().Perm(), loose)
		}
		if !strings.Contains(logBuf.String(), "tightening") {
			t.Errorf("no warning for a %04o log: %q", loose, logBuf.String())
		}
	}
	if b, _ := os.ReadFile(p); bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("reopening changed the log: %q", b)
	}
	// Devices would swallow the log: refused.
	for _, dev := range []string{"/dev/null", "/dev/full"} {
		if _, err := os.Stat(dev); err != nil {
			continue
		}
		if w, err := Open(dev, nil); err == nil {
			w.Close()
			t.Errorf("opened %s as the audit log", dev)
		}
	}
}

func readLines(t *testing.T, p string) []Record {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 2*MaxLine)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("line is not JSON: %q", sc.Text())
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGroupCommitKeepsEveryLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	w, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := Record{TS: ts, Shed: fmt.Sprintf("s%03d", i), NS: "agent", Op: "ping", Result: "ok", Detail: strings.Repeat("d", i*7)}
			if err := w.Write(context.Background(), r); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	recs := readLines(t, p)
	for _, r := range recs {
		if seen[r.Shed] {
			t.Fatalf("line for %s written twice", r.Shed)
		}
		seen[r.Shed] = true
		var i int
		fmt.Sscanf(r.Shed, "s%03d", &i)
		if r.Detail != strings.Repeat("d", i*7) {
			t.Fatalf("line for %s carries another's detail", r.Shed)
		}
	}
	if len(recs) != n || len(seen) != n {
		t.Fatalf("%d lines (%d distinct), want %d", len(recs), len(seen), n)
	}
}

// gatedFile holds the first fsync until release is closed, so the test
// knows every other writer wrote while it ran.
type gatedFile struct {
	*os.File
	release chan struct{}
	writes  atomic.Int32
	syncs   atomic.Int32
}

func (g *gatedFile) Write(b []byte) (int, error) {
	defer g.writes.Add(1)
	return g.File.Write(b)
}

func (g *gatedFile) Sync() error {
	if g.syncs.Add(1) == 1 {
		<-g.release
	}
	return g.File.Sync()
}

// TestGroupCommitBatchesWaitingWriters (Fsync mode): the first writer leads
// an fsync; the writers that wrote meanwhile share the next one, and none
// returns before its line is flushed.
func TestGroupCommitBatchesWaitingWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedFile{File: f, release: make(chan struct{})}
	w := newWriter(p, g, Options{Durability: Fsync})
	const n = 200
	var wg sync.WaitGroup
	first := make(chan error, 1)
	go func() { first <- w.Write(context.Background(), Record{TS: ts, Shed: "first"}) }()
	for g.syncs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var returned atomic.Int32
	for i := range n - 1 {
		wg.Go(func() {
			if err := w.Write(context.Background(), Record{TS: ts, Shed: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		})
	}
	for g.writes.Load() < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	if returned.Load() != 0 || len(first) != 0 {
		t.Fatal("a write returned before its line was flushed")
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := g.syncs.Load(); got != 2 {
		t.Fatalf("%d fsyncs for %d writers waiting behind one, want 2", got, n-1)
	}
	w.Close()
	if got := len(readLines(t, p)); got != n {
		t.Fatalf("%d lines, want %d", got, n)
	}
}

// TestBatchWriteReturnsBeforeTheFlush: in Batch mode a line is written when
// Write returns, and its flush follows without anyone waiting for it.
func TestBatchWriteReturnsBeforeTheFlush(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedFile{File: f, release: make(chan struct{})}
	w := newWriter(p, g, Options{Durability: Batch})
	for i := range 50 {
		if err := w.Write(context.Background(), Record{TS: ts, Shed: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(readLines(t, p)); got != 50 {
		t.Fatalf("%d lines in the file once Write returned, want 50", got)
	}
	for g.syncs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(g.release)
	w.Close()
	if got := g.syncs.Load(); got < 2 || got > 50 {
		t.Fatalf("%d fsyncs for 50 lines written while one was held", got)
	}
}

// syncFailFile fails its fsyncs while fail is set.
type syncFailFile struct {
	*os.File
	fail atomic.Bool
}

func (s *syncFailFile) Sync() error {
	if s.fail.Load() {
		return syscall.EIO
	}
	return s.File.Sync()
}

// TestFailedFlushDeniesUntilHealthy: in both modes a failed fsync makes the
// log unhealthy; every later Write fails until one is written and flushed.
func TestFailedFlushDeniesUntilHealthy(t *testing.T) {
	for _, mode := range []Durability{Batch, Fsync} {
		t.Run(string(mode), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.log")
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			sf := &syncFailFile{File: f}
			var logBuf bytes.Buffer
			var states []State
			w := newWriter(p, sf, Options{Durability: mode, Log: slogTo(&logBuf), OnState: func(s State) { states = append(states, s) }})
			defer w.Close()
			sf.fail.Store(true)
			// Batch: the write succeeds and its flush fails behind it.
			err = w.Write(context.Background(), Record{TS: ts, Shed: "s"})
			if mode == Fsync && !errors.Is(err, syscall.EIO) {
				t.Fatalf("fsync mode write with a failing flush: %v", err)
			}
			for w.State().Err == "" {
				time.Sleep(time.Millisecond)
			}
			for range 3 {
				if err := w.Write(context.Background(), Record{TS: ts, Shed: "s"}); !errors.Is(err, syscall.EIO) {
					t.Fatalf("write on an unhealthy log: %v", err)
				}
			}
			sf.fail.Store(false)
			if err := w.Write(context.Background(), Record{TS: ts, Shed: "s"}); err != nil {
				t.Fatalf("write once flushes work again: %v", err)
			}
			if s := w.State(); s.Err != "" || s.Durability != mode {
				t.Fatalf("state after recovery: %+v", s)
			}
			if len(states) != 2 || states[0].Err == "" || states[1].Err != "" {
				t.Fatalf("state changes %+v, want unhealthy then healthy", states)
			}
			if l := logBuf.String(); !strings.Contains(l, "denied") || !strings.Contains(l, "healthy again") {
				t.Errorf("log does not say so: %q", l)
			}
		})
	}
}

// TestFailsClosed writes to a real device that refuses every write with
// ENOSPC: every writer of the batch gets the error, none a success.
func TestFailsClosed(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	var logBuf bytes.Buffer
	w := newWriter("/dev/full", f, Options{Log: slogTo(&logBuf)})
	defer w.Close()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			err := w.Write(context.Background(), Record{TS: ts, Result: "ok"})
			if err == nil {
				t.Error("a write to a full disk reported success")
			} else if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("error %v, want ENOSPC", err)
			}
		})
	}
	wg.Wait()
	if !strings.Contains(logBuf.String(), "denied") {
		t.Errorf("failure not logged: %q", logBuf.String())
	}
}

// tornFile writes half of its first write, then fails, like a disk that
// fills mid-line.
type tornFile struct {
	*os.File
	calls int
}

func (f *tornFile) Write(b []byte) (int, error) {
	f.calls++
	if f.calls == 1 {
		n, _ := f.File.Write(b[:len(b)/2])
		return n, syscall.ENOSPC
	}
	return f.File.Write(b)
}

func TestTornWriteSpoilsNoLaterLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(p, &tornFile{File: f}, Options{})
	if err := w.Write(context.Background(), Record{TS: ts, Shed: "lost"}); err == nil {
		t.Fatal("torn write reported success")
	}
	if err := w.Write(context.Background(), Record{TS: ts, Shed: "kept"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var got []string
	fh, _ := os.Open(p)
	defer fh.Close()
	if err := Read(fh, Filter{}, func(r Record) error { got = append(got, r.Shed); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "kept" {
		t.Fatalf("read back %v, want [kept]", got)
	}
}

func TestCloseRacingWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	w, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			switch err := w.Write(context.Background(), Record{TS: ts, Shed: fmt.Sprint(i)}); {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrClosed):
				t.Error(err)
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := len(readLines(t, p)); got != int(ok.Load()) {
		t.Fatalf("%d lines for %d successful writes", got, ok.Load())
	}
	if err := w.Write(context.Background(), Record{TS: ts}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestZeroTimeIsStamped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	w, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Truncate(time.Second)
	if err := w.Write(context.Background(), Record{Shed: "s"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := readLines(t, p)[0]
	if r.TS.Before(before) || r.TS.After(time.Now()) {
		t.Fatalf("stamped %v", r.TS)
	}
}

var benchRecord = Record{TS: ts, Shed: "bench", NS: "agent", Op: "ping", Result: "ok", Detail: "ssh-ed25519 SHA256:abc"}

// BenchmarkWriteSequential is one writer at a time, in each mode, beside its
// floors measured in the same run: a bare write(2) of the same line
// ("floor-write", what batch costs at best) and write(2) plus fsync
// ("floor-write+fsync", what fsync mode costs at best).
func BenchmarkWriteSequential(b *testing.B) {
	line, err := benchRecord.line()
	if err != nil {
		b.Fatal(err)
	}
	for _, floor := range []struct {
		name string
		sync bool
	}{{"floor-write", false}, {"floor-write+fsync", true}} {
		b.Run(floor.name, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "a.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			for b.Loop() {
				if _, err := f.Write(line); err != nil {
					b.Fatal(err)
				}
				if floor.sync {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	for _, mode := range []Durability{Batch, Fsync} {
		b.Run(string(mode), func(b *testing.B) {
			w, err := OpenWith(filepath.Join(b.TempDir(), "a.log"), Options{Durability: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			for b.Loop() {
				if err := w.Write(context.Background(), benchRecord); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteParallel is 64 writers at once in each mode: in fsync mode
// the gap to the sequential figure is what group commit buys.
func BenchmarkWriteParallel(b *testing.B) {
	for _, mode := range []Durability{Batch, Fsync} {
		b.Run(string(mode), func(b *testing.B) {
			w, err := OpenWith(filepath.Join(b.TempDir(), "a.log"), Options{Durability: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.SetParallelism(max(1, 64/runtimeProcs()))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.Write(context.Background(), benchRecord); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
		})
	}
}

func TestOpenRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("no mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() {
		w, err := Open(p, nil)
		if err == nil {
			w.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("opened a FIFO as the audit log")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open blocked on a FIFO")
	}
}

// countingFile counts fsyncs and the lines each one covered.
type countingFile struct {
	*os.File
	writes  atomic.Int32
	syncs   atomic.Int32
	covered atomic.Int32 // lines written before the latest fsync began
}

func (c *countingFile) Write(b []byte) (int, error) {
	defer c.writes.Add(1)
	return c.File.Write(b)
}

func (c *countingFile) Sync() error {
	c.syncs.Add(1)
	c.covered.Store(c.writes.Load())
	return c.File.Sync()
}

// TestBatchFlushesOncePerInterval: in Batch mode a steady stream of lines
// shares one fsync per FlushEvery rather than paying one each, and the last
// line is still flushed within an interval of being written.
func TestBatchFlushesOncePerInterval(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingFile{File: f}
	const every = 50 * time.Millisecond
	w := newWriter(p, c, Options{Durability: Batch, FlushEvery: every})
	defer w.Close()
	start := time.Now()
	n := int32(0)
	for time.Since(start) < 6*every {
		if err := w.Write(context.Background(), Record{TS: ts, Shed: "s"}); err != nil {
			t.Fatal(err)
		}
		n++
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(start)
	deadline := time.Now().Add(10 * every)
	for c.covered.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := c.covered.Load(); got < n {
		t.Fatalf("%d of %d lines flushed %s after the last write", got, n, 10*every)
	}
	if max := int32(elapsed/every) + 2; c.syncs.Load() > max {
		t.Fatalf("%d fsyncs for %d lines over %s, want at most %d (one per %s)", c.syncs.Load(), n, elapsed.Round(time.Millisecond), max, every)
	}
}
