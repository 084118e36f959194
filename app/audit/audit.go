// Package audit is spuff's audit log: one JSON line per request, written
// before the request is answered and flushed within 100 ms behind it or
// before it (audit.durability), and read back with filters or followed as it grows. It
// cannot be turned off; a line that cannot be written or flushed makes the
// broker deny its request, and every later one until the log is healthy.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Results.
const (
	ResultOK     = "ok"
	ResultDenied = "denied"
	ResultError  = "error"
)

// MaxLine bounds one line, newline included, so that a line stays one small
// append and readers can bound what they buffer.
const MaxLine = 64 << 10

// truncated marks a detail cut to fit MaxLine.
const truncated = "…[truncated]"

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit: log closed")

// Record is one audit line. The first seven fields are the documented format,
// in this order; ID (the request id) and Code (the wire error code) follow
// when set, and then a counted line's Count, IDs and IDRange. Fields a
// reader does not know are ignored.
//
// A counted line answers Count requests alike (a shed's flood of denials,
// coalesced): IDs lists the first of their ids, and when there are more
// than it lists, IDRange is the least and the greatest of all of them (ids
// compare as strings; UUIDs are written in their lowercase form, so in
// time order).
type Record struct {
	TS       time.Time `json:"ts"`
	Shed     string    `json:"shed"`
	NS       string    `json:"ns"`
	Op       string    `json:"op"`
	Result   string    `json:"result"`
	Detail   string    `json:"detail"`
	Approval string    `json:"approval"`
	ID       string    `json:"id,omitempty"`
	Code     string    `json:"code,omitempty"`
	Count    int       `json:"count,omitempty"`
	IDs      []string  `json:"ids,omitempty"`
	IDRange  [2]string `json:"id_range,omitzero"`
}

// Requests is how many requests the line answers.
func (r Record) Requests() int {
	return max(r.Count, 1)
}

// Answers reports whether the line is that of the request with this id: its
// ID, one of its IDs, or within its IDRange.
func (r Record) Answers(id string) bool {
	if id == "" {
		return false
	}
	if id == r.ID || slices.Contains(r.IDs, id) {
		return true
	}
	return r.IDRange[0] != "" && r.IDRange[0] <= id && id <= r.IDRange[1]
}

// wire fixes the line's field order and its second-precision UTC timestamp;
// encoding/json writes struct fields in declaration order.
type wire struct {
	TS       string    `json:"ts"`
	Shed     string    `json:"shed"`
	NS       string    `json:"ns"`
	Op       string    `json:"op"`
	Result   string    `json:"result"`
	Detail   string    `json:"detail"`
	Approval string    `json:"approval"`
	ID       string    `json:"id,omitempty"`
	Code     string    `json:"code,omitempty"`
	Count    int       `json:"count,omitempty"`
	IDs      []string  `json:"ids,omitempty"`
	IDRange  [2]string `json:"id_range,omitzero"`
}

func (r Record) wire() wire {
	w := wire{
		TS: r.TS.UTC().Format(time.RFC3339), Shed: r.Shed, NS: r.NS, Op: r.Op,
		Result: r.Result, Detail: r.Detail, Approval: r.Approval, ID: r.ID, Code: r.Code,
		Count: r.Count, IDs: r.IDs, IDRange: r.IDRange,
	}
	if w.Approval == "" {
		w.Approval = "none"
	}
	return w
}

// MarshalJSON writes the documented line format (without the newline).
func (r Record) MarshalJSON() ([]byte, error) {
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

// line encodes r as one line ending in '\n', at most MaxLine bytes. JSON
// escaping keeps newlines and control characters in any field from ever
// splitting a line; HTML escaping is off so details stay readable.
func (r Record) line() ([]byte, error) {
	w := r.wire()
	for {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(w); err != nil {
			return nil, fmt.Errorf("audit: encoding record: %w", err)
		}
		over := buf.Len() - MaxLine
		if over <= 0 {
			return buf.Bytes(), nil
		}
		// Only the detail is free text of any size; the other fields are
		// names the broker bounds. Cut at least the excess (escapes only
		// make the encoded form longer than the raw bytes cut), then retry.
		d := w.Detail
		if d == "" || d == truncated {
			return nil, fmt.Errorf("audit: record of %d bytes does not fit a line even without its detail", buf.Len())
		}
		d = strings.TrimSuffix(d, truncated)
		keep := max(len(d)-over-len(truncated), 0)
		for keep > 0 && !utf8.RuneStart(d[keep]) {
			keep--
		}
		w.Detail = d[:keep] + truncated
	}
}

// UnmarshalJSON reads a line; fields it does not know are ignored.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ts, err := time.Parse(time.RFC3339, w.TS)
	if err != nil {
		return fmt.Errorf("audit: bad ts %q: %w", w.TS, err)
	}
	// Lines are written in UTC; an offset that moves the time out of years
	// 0000–9999 could not be written back, so such a line is not a record.
	if y := ts.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("audit: ts %q is out of range", w.TS)
	}
	*r = Record{TS: ts, Shed: w.Shed, NS: w.NS, Op: w.Op, Result: w.Result, Detail: w.Detail, Approval: w.Approval, ID: w.ID, Code: w.Code,
		Count: w.Count, IDs: w.IDs, IDRange: w.IDRange}
	return nil
}

// file is what the writer needs of the log file.
type file interface {
	Write([]byte) (int, error)
	Sync() error
	Close() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

var _ file = (*os.File)(nil)

// Durability says when a written line is flushed to disk. In both modes the
// line is written (write(2) returned) before Write returns, so a crash or
// kill -9 of spuff-app never loses the line of an answered request; the
// modes differ only on power loss.
type Durability string

const (
	// Batch (the default) returns once the line is written; a flusher
	// fsyncs behind the writers, at most once per FlushEvery, so a line is
	// undurable for at most FlushEvery and one flush.
	Batch Durability = "batch"
	// Fsync returns only once the line is fsync'd. Concurrent writers share
	// one fsync: the first to wait leads it, later ones join the next.
	Fsync Durability = "fsync"
)

// ParseDurability reads audit.durability; "" is Batch.
func ParseDurability(s string) (Durability, error) {
	switch d := Durability(s); d {
	case "":
		return Batch, nil
	case Batch, Fsync:
		return d, nil
	}
	return "", fmt.Errorf("audit: durability %q: use %q or %q", s, Batch, Fsync)
}

// The writer's own lines (a reopen after rotation) carry this ns and op.
const (
	NSAudit  = "audit"
	OpReopen = "reopen"
)

// State is the log's health, for status surfaces. Err is empty while the
// log is healthy; otherwise every request is denied and Since says when
// that began.
type State struct {
	Path       string     `json:"path"`
	Durability Durability `json:"durability"`
	Err        string     `json:"error,omitempty"`
	Since      time.Time  `json:"since,omitzero"`
}

// DefaultFlushEvery is Batch mode's flush interval. An fsync costs the
// host a few hundred microseconds of CPU and, being a blocking system
// call, hands the process's one processor to another thread and wakes the
// runtime's monitor, which then polls every 20 µs for a while; requests
// in flight pay for both. One flush per interval covers every line
// written in it, and a quiet host still flushes right behind each line.
// Measured on agent-forward signs in a loop (interleaved with a 10 ms
// build): 100 ms took 10-25 % off the broker's overhead, and 1 s little
// more, so 100 ms is the most a line waits for the disk.
const DefaultFlushEvery = 100 * time.Millisecond

// Options tune a Writer. Zero values take the defaults.
type Options struct {
	Durability Durability // Batch
	// FlushEvery is the least time between two of Batch mode's flushes
	// (DefaultFlushEvery).
	FlushEvery time.Duration
	Log        *slog.Logger
	// OnState, if set, is called each time the log turns unhealthy or
	// healthy again, with the Writer locked: it must return quickly (hand
	// the news on, e.g. to an event stream) and must not call the Writer.
	OnState func(State)
}

// Writer appends records. Write returns once its line is written, and in
// Fsync mode once it is also on disk. A failed write or flush makes the log
// unhealthy: that request and every later one get an error (and so are
// denied) until a line is again written and fsync'd, which each later Write
// tries. Each Write first checks that the path still names the open file;
// after a delete or a rotation it reopens the path and says so in a line.
type Writer struct {
	path  string
	cpath []byte // path, NUL-terminated, for the quiet path check
	mode  Durability
	every time.Duration // Batch: the least time between flushes
	log   *slog.Logger
	hook  func(State)

	mu      sync.Mutex // guards everything below, and the file's writes
	cond    *sync.Cond // a flush finished
	f       file
	fi      os.FileInfo // what f is, to notice the path naming another file
	torn    bool        // the file ends in a fragment of a failed write
	closed  bool
	bad     error // non-nil: unhealthy
	badAt   time.Time
	written uint64 // lines written so far (sequence numbers)
	syncing bool   // a flush is under way
	waiters []*waiter

	kick    chan struct{} // Batch: lines await the flusher
	stop    chan struct{} // closed by Close: the flusher waits no more
	flusher chan struct{} // closed when the flusher has ended

	closeOnce sync.Once
	cerr      error
}

// waiter is a Write that waits for the flush that covers its line.
type waiter struct {
	seq  uint64
	done bool
	err  error
}

// Open opens (creating) the log at path in Batch mode.
func Open(path string, log *slog.Logger) (*Writer, error) {
	return OpenWith(path, Options{Log: log})
}

// OpenWith opens (creating) the log at path: its directory 0700 when
// created, the file 0600. A file others can read is tightened to 0600 with a
// warning. Anything but a regular file (a device such as /dev/null would
// swallow the log) is refused.
func OpenWith(path string, opts Options) (*Writer, error) {
	d, err := ParseDurability(string(opts.Durability))
	if err != nil {
		return nil, err
	}
	opts.Durability = d
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	f, err := openFile(path, opts.Log)
	if err != nil {
		return nil, err
	}
	opts.Log.Debug("audit log open", "path", path, "durability", string(d))
	return newWriter(path, quiet(f), opts), nil
}

func openFile(path string, log *slog.Logger) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: creating %s: %w", dir, err)
	}
	// A FIFO would block the open; devices would swallow the log.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: opening %s: %w", path, err)
	}
	// Check what was opened, not what a name pointed at a moment before.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: opening %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("audit: %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("audit log was accessible to others; tightening it to 0600", "path", path, "mode", fmt.Sprintf("%04o", perm))
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: chmod 600 %s: %w", path, err)
		}
	}
	return f, nil
}

func newWriter(path string, f file, opts Options) *Writer {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Durability == "" {
		opts.Durability = Batch
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	w := &Writer{path: path, cpath: append([]byte(path), 0), mode: opts.Durability, every: opts.FlushEvery, log: opts.Log, hook: opts.OnState, f: f,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), flusher: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	w.fi, _ = f.Stat()
	if w.mode == Batch {
		go w.flushLoop()
	} else {
		close(w.flusher)
	}
	return w
}

// Path is the log file's path.
func (w *Writer) Path() string { return w.path }

// State reports the log's health.
func (w *Writer) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stateLocked()
}

func (w *Writer) stateLocked() State {
	s := State{Path: w.path, Durability: w.mode}
	if w.bad != nil {
		s.Err, s.Since = w.bad.Error(), w.badAt
	}
	return s
}

// Write appends r. It returns once the line is written, and in Fsync mode
// (or while the log is unhealthy) once it is fsync'd too. A zero TS is
// stamped with now. An error means the line is not written or not durable,
// and the caller must not act as if it were audited. ctx is not consulted:
// the line of a request that went ahead is written whatever its context.
func (w *Writer) Write(_ context.Context, r Record) error {
	if r.TS.IsZero() {
		r.TS = time.Now()
	}
	line, err := r.line()
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if err := w.checkPath(); err != nil {
		w.setBad(err)
		return err
	}
	if err := w.writeLocked(line); err != nil {
		w.setBad(err)
		return err
	}
	if w.mode == Batch && w.bad == nil {
		select {
		case w.kick <- struct{}{}:
		default:
		}
		return nil
	}
	// Fsync mode, or an unhealthy log proving itself well again.
	me := &waiter{seq: w.written}
	w.waiters = append(w.waiters, me)
	for !me.done {
		if w.syncing {
			w.cond.Wait()
			continue
		}
		w.flushLocked()
	}
	if me.err == nil && w.bad != nil {
		w.setBad(nil)
	}
	return me.err
}

// writeLocked appends line in one write(2).
func (w *Writer) writeLocked(line []byte) error {
	buf := line
	if w.torn {
		// End the fragment a failed write left, so it spoils no other line.
		buf = append([]byte{'\n'}, line...)
	}
	n, err := w.f.Write(buf)
	if err == nil {
		w.torn = false
		w.written++
		return nil
	}
	if n > 0 {
		// A short write (a full disk) leaves part of a line. Cut it off so
		// the log stays whole; if that fails too, the next write starts
		// with a newline so the fragment spoils no other line.
		fi, serr := w.f.Stat()
		if serr != nil || w.f.Truncate(fi.Size()-int64(n)) != nil {
			w.torn = buf[n-1] != '\n'
		}
	}
	return fmt.Errorf("audit: writing %s: %w", w.path, err)
}

// flushLocked fsyncs every line written so far, with mu released during the
// fsync so that other writers can write meanwhile, and gives each waiter it
// covers the result. Only one flush runs at a time.
func (w *Writer) flushLocked() {
	w.syncing = true
	target, f := w.written, w.f
	w.mu.Unlock()
	err := f.Sync()
	w.mu.Lock()
	w.syncing = false
	if err != nil {
		err = fmt.Errorf("audit: flushing %s: %w", w.path, err)
		w.setBad(err)
	}
	kept := w.waiters[:0]
	for _, x := range w.waiters {
		if x.seq <= target {
			x.done, x.err = true, err
		} else {
			kept = append(kept, x)
		}
	}
	clear(w.waiters[len(kept):])
	w.waiters = kept
	w.cond.Broadcast()
}

// flushLoop is Batch mode's flusher: it fsyncs behind the writers, at most
// once per interval, so that lines written close together share a flush.
// Close cuts the wait short.
func (w *Writer) flushLoop() {
	defer close(w.flusher)
	var last time.Time
	for range w.kick {
		if wait := w.every - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-w.stop:
				t.Stop()
			}
		}
		last = time.Now()
		w.mu.Lock()
		for w.syncing {
			w.cond.Wait()
		}
		w.flushLocked()
		w.mu.Unlock()
	}
}

// checkPath reopens the log when its path no longer names the open file
// (deleted, or moved away as logrotate does), and writes a line saying so.
func (w *Writer) checkPath() error {
	if w.fi != nil && namesFile(w.cpath, w.fi) {
		return nil
	}
	fi, err := os.Stat(w.path)
	if err == nil && w.fi != nil && os.SameFile(fi, w.fi) {
		return nil
	}
	why := "was deleted or moved away"
	if err == nil {
		why = "now names another file (rotated)"
	}
	nf, oerr := openFile(w.path, w.log)
	if oerr != nil {
		return fmt.Errorf("audit: the log %s, and reopening it failed: %w", why, oerr)
	}
	nfi, err := nf.Stat()
	if err != nil {
		nf.Close()
		return fmt.Errorf("audit: reopening %s: %w", w.path, err)
	}
	// Lines already written to the old file get their flush before it goes;
	// a flush under way holds its own reference to it.
	if w.syncing {
		for w.syncing {
			w.cond.Wait()
		}
	}
	old := w.f
	if err := old.Sync(); err != nil {
		w.log.Warn("audit: flushing the old log file before reopening", "path", w.path, "err", err)
	}
	old.Close()
	w.f, w.fi, w.torn = quiet(nf), nfi, false
	w.log.Warn("audit log reopened", "path", w.path, "reason", why)
	line, err := Record{TS: time.Now(), NS: NSAudit, Op: OpReopen, Result: ResultOK,
		Detail: fmt.Sprintf("the audit log %s %s; reopened it, earlier lines are in the old file if it still exists", w.path, why)}.line()
	if err != nil {
		return err
	}
	return w.writeLocked(line)
}

// setBad records the log's health (nil: healthy), logging each change.
func (w *Writer) setBad(err error) {
	switch {
	case err != nil && w.bad == nil:
		w.bad, w.badAt = err, time.Now()
		w.log.Error("audit log failing; every request is denied until it is healthy again", "err", err)
	case err != nil:
		w.bad = err
		w.log.Error("audit lines not written; their requests are denied", "err", err)
		return
	case w.bad != nil:
		w.log.Warn("audit log healthy again; requests are served", "path", w.path, "was", w.bad.Error(), "for", time.Since(w.badAt).Round(time.Millisecond))
		w.bad, w.badAt = nil, time.Time{}
	default:
		return
	}
	if w.hook != nil {
		w.hook(w.stateLocked())
	}
}

// Close flushes the lines written, then closes the file. Writes after Close
// return ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first && w.mode == Batch {
		close(w.stop)
		close(w.kick)
	}
	<-w.flusher
	w.closeOnce.Do(func() {
		w.mu.Lock()
		for w.syncing {
			w.cond.Wait()
		}
		f := w.f
		w.mu.Unlock()
		serr := f.Sync()
		w.cerr = errors.Join(serr, f.Close())
		if w.cerr != nil {
			w.cerr = fmt.Errorf("audit: closing %s: %w", w.path, w.cerr)
		}
	})
	return w.cerr
}
