package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Filter selects records; empty fields match everything.
type Filter struct {
	Shed   string
	NS     string
	Result string
	Since  time.Time
}

// Check refuses a filter that no line can pass, so that a mistyped
// result reads as a mistake, not as a log with nothing in it.
func (f Filter) Check() error {
	switch f.Result {
	case "", ResultOK, ResultDenied, ResultError:
		return nil
	}
	return fmt.Errorf("audit: no line has the result %q: a result is %s, %s or %s", f.Result, ResultOK, ResultDenied, ResultError)
}

// Match reports whether r passes the filter.
func (f Filter) Match(r Record) bool {
	return (f.Shed == "" || r.Shed == f.Shed) &&
		(f.NS == "" || r.NS == f.NS) &&
		(f.Result == "" || r.Result == f.Result) &&
		(f.Since.IsZero() || !r.TS.Before(f.Since))
}

// maxRead bounds what a reader buffers for one line. The writer never
// writes more than MaxLine; anything longer was not written by it.
const maxRead = 1 << 20

// lines splits a stream into lines, dropping any longer than maxRead
// without buffering them whole.
type lines struct {
	br   *bufio.Reader
	buf  []byte
	skip bool // inside an overlong line
}

func newLines(r io.Reader) *lines { return &lines{br: bufio.NewReaderSize(r, 64<<10)} }

// next returns the next complete line (with its '\n'), or the bytes of an
// unterminated tail together with the reader's error (io.EOF at the end).
// The line is valid until the next call.
func (l *lines) next() ([]byte, error) {
	l.buf = l.buf[:0]
	for {
		chunk, err := l.br.ReadSlice('\n')
		if !l.skip {
			l.buf = append(l.buf, chunk...)
		}
		switch {
		case err == nil:
			if l.skip {
				l.skip = false
				continue
			}
			return l.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(l.buf) > maxRead {
				l.skip, l.buf = true, l.buf[:0]
			}
		default:
			if l.skip {
				return nil, err
			}
			return l.buf, err
		}
	}
}

// Read calls fn for every matching record in r, in order. A line that is
// not a record (a torn write after a crash, say) is skipped rather than
// ending the read. An error from fn ends the read and is returned.
func Read(r io.Reader, f Filter, fn func(Record) error) error {
	ls := newLines(r)
	for {
		line, err := ls.next()
		if len(line) > 0 {
			if ferr := emit(line, f, fn); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: reading: %w", err)
		}
	}
}

func emit(line []byte, f Filter, fn func(Record) error) error {
	var rec Record
	if json.Unmarshal(line, &rec) != nil {
		return nil
	}
	if !f.Match(rec) {
		return nil
	}
	return fn(rec)
}

// followPoll is how often Follow looks for new lines and for rotation.
const followPoll = 200 * time.Millisecond

// Follow calls fn for each matching record appended to the log at path from
// now on (like tail -f), until ctx ends (then it returns nil) or fn fails.
// It survives the file being created late, truncated, or replaced by
// rotation: a new file is read from its start.
func Follow(ctx context.Context, path string, f Filter, fn func(Record) error) error {
	var (
		fh      *os.File
		ls      *lines
		partial []byte
		off     int64 // bytes consumed from fh
	)
	defer func() {
		if fh != nil {
			fh.Close()
		}
	}()
	open := func(fromEnd bool) error {
		h, err := os.Open(path)
		if err != nil {
			return err
		}
		var at int64
		if fromEnd {
			if at, err = h.Seek(0, io.SeekEnd); err != nil {
				h.Close()
				return err
			}
		}
		if fh != nil {
			fh.Close()
		}
		fh, ls, partial, off = h, newLines(h), partial[:0], at
		return nil
	}
	if err := open(true); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit: following %s: %w", path, err)
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for {
		for fh != nil {
			chunk, err := ls.next()
			off += int64(len(chunk))
			if len(partial)+len(chunk) <= maxRead {
				partial = append(partial, chunk...)
			} else {
				partial = partial[:0]
			}
			if err != nil {
				break // the tail stays in partial until its newline arrives
			}
			if ferr := emit(partial, f, fn); ferr != nil {
				return ferr
			}
			partial = partial[:0]
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		st, err := os.Stat(path)
		switch {
		case err != nil:
			// Removed: keep the old file until a new one appears.
		case fh == nil:
			_ = open(false)
		default:
			cur, serr := fh.Stat()
			if serr != nil || !os.SameFile(cur, st) || st.Size() < off {
				_ = open(false)
			}
		}
	}
}
