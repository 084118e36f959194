// Package audit is spuff's audit log: one JSON line per request, written and
// fsync'd before the request is answered (group commit), and read back with
// filters or followed as it grows. It cannot be turned off; a line that
// cannot be written makes the broker deny its request.
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
// when set. Fields a reader does not know are ignored.
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
}

// wire fixes the line's field order and its second-precision UTC timestamp;
// encoding/json writes struct fields in declaration order.
type wire struct {
	TS       string `json:"ts"`
	Shed     string `json:"shed"`
	NS       string `json:"ns"`
	Op       string `json:"op"`
	Result   string `json:"result"`
	Detail   string `json:"detail"`
	Approval string `json:"approval"`
	ID       string `json:"id,omitempty"`
	Code     string `json:"code,omitempty"`
}

func (r Record) wire() wire {
	w := wire{
		TS: r.TS.UTC().Format(time.RFC3339), Shed: r.Shed, NS: r.NS, Op: r.Op,
		Result: r.Result, Detail: r.Detail, Approval: r.Approval, ID: r.ID, Code: r.Code,
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
	*r = Record{TS: ts, Shed: w.Shed, NS: w.NS, Op: w.Op, Result: w.Result, Detail: w.Detail, Approval: w.Approval, ID: w.ID, Code: w.Code}
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

// maxBatch bounds one group commit.
const maxBatch = 256

// Writer appends records. Concurrent Writes are batched by one goroutine:
// one write and one fsync commit every line queued meanwhile, and each Write
// returns only once its line is on disk, or with the batch's error.
type Writer struct {
	path string
	f    file
	log  *slog.Logger
	reqs chan *pending
	done chan struct{}

	mu     sync.RWMutex // held for reading while queueing, for writing by Close
	closed bool

	closeOnce sync.Once
	cerr      error
}

type pending struct {
	line []byte
	err  chan error
}

// Open opens (creating) the log at path: its directory 0700 when created,
// the file 0600. A file others can read is tightened to 0600 with a warning.
// Anything but a regular file (a device such as /dev/null would swallow the
// log) is refused.
func Open(path string, log *slog.Logger) (*Writer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
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
	return newWriter(path, f, log), nil
}

func newWriter(path string, f file, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{path: path, f: f, log: log, reqs: make(chan *pending, maxBatch), done: make(chan struct{})}
	go w.loop()
	return w
}

// Path is the log file's path.
func (w *Writer) Path() string { return w.path }

// Write appends r and returns once it is fsync'd. A zero TS is stamped with
// now. An error means the line is not durable and the caller must not act as
// if it were audited. Once queued, a line is committed whatever ctx does, so
// the log never misses a line for a request that went ahead.
func (w *Writer) Write(ctx context.Context, r Record) error {
	if r.TS.IsZero() {
		r.TS = time.Now()
	}
	line, err := r.line()
	if err != nil {
		return err
	}
	p := &pending{line: line, err: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.reqs <- p:
	case <-ctx.Done():
		w.mu.RUnlock()
		return fmt.Errorf("audit: line not written: %w", ctx.Err())
	}
	w.mu.RUnlock()
	return <-p.err
}

func (w *Writer) loop() {
	defer close(w.done)
	var (
		buf  []byte
		torn bool
		size int64 = -1 // the file's length after the last good write; -1 unknown
	)
	if fi, err := w.f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	batch := make([]*pending, 0, maxBatch)
	for p := range w.reqs {
		batch = append(batch[:0], p)
	drain:
		for len(batch) < maxBatch {
			select {
			case p, ok := <-w.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		buf = buf[:0]
		if torn {
			// End the fragment a failed write left, so it spoils no other line.
			buf = append(buf, '\n')
		}
		for _, p := range batch {
			buf = append(buf, p.line...)
		}
		n, err := w.f.Write(buf)
		switch {
		case err == nil:
			if size >= 0 {
				size += int64(n)
			}
			torn = false
			err = w.f.Sync()
		case n > 0:
			// A short write (a full disk) leaves part of a line. Cut it off
			// so the log stays whole; if that fails too, the next batch
			// starts with a newline so the fragment spoils no other line.
			if size < 0 || w.f.Truncate(size) != nil {
				torn = buf[n-1] != '\n'
				if size >= 0 {
					size += int64(n)
				}
			}
		}
		if err != nil {
			err = fmt.Errorf("audit: writing %s: %w", w.path, err)
			w.log.Error("audit lines not written; their requests are denied", "err", err, "lines", len(batch))
		}
		for _, p := range batch {
			p.err <- err
		}
	}
}

// Close commits the lines already queued, then closes the file. Writes after
// Close return ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.reqs)
	}
	w.mu.Unlock()
	<-w.done
	w.closeOnce.Do(func() { w.cerr = w.f.Close() })
	return w.cerr
}
