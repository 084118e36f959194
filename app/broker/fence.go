package broker

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/app/config"
)

// fenceQuantum rounds a mark up, so that a shed whose clock runs ahead
// raises its mark (one write) about once a quantum, not once a request; a
// restarted broker then refuses that shed's ids for at most a quantum more
// than it must.
const fenceQuantum = time.Second

// fenceCompactAt is how many lines the mark file may hold before it is
// rewritten with one line per shed.
const fenceCompactAt = 10_000

// FenceState is the replay fence's health, for status surfaces. Err is
// empty while the fence is healthy; otherwise requests dated ahead of the
// host clock have been refused since Since.
type FenceState struct {
	Path  string
	Err   string
	Since time.Time
}

// fenceFile keeps, for each shed, a mark at or past the time of every
// future-dated request id the broker accepted. The replay memory is lost
// on restart and a restarted broker refuses ids dated before it started,
// but a shed's clock may run ahead: an id dated after the restart could
// have been answered before it. The marks are that fence's other half: a
// restarted broker also refuses a shed's ids dated at or before its mark.
//
// A mark is written (write(2) returned) before the request that raised it
// is answered, so kill -9 loses none; the flush follows right behind, as
// the audit log's batch mode does. The file is an append-only list of
// "shed unix-ms" lines, so a torn last line costs only that line.
//
// A failed write or flush makes the fence fail: a request that would raise
// a mark is refused until a mark is again written and flushed, which each
// such request tries in turn. Requests dated at or behind the host clock,
// and those behind a mark already written, need no mark and are served.
type fenceFile struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	f     *os.File
	marks map[string]int64 // unix ms: this run's marks, and the loaded ones
	lines int              // lines in the file
	err   error            // failing since since: a raise must write and flush to heal it
	since time.Time

	kick      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	cerr      error
}

// openFence reads the marks at path and keeps only those still ahead of
// now (older ones fence nothing a start-time fence does not), rewriting the
// file with them; it returns the file and the marks read.
func openFence(path string, now time.Time, log *slog.Logger) (*fenceFile, map[string]time.Time, error) {
	loaded := map[string]int64{}
	if err := readFence(path, loaded); err != nil {
		return nil, nil, err
	}
	marks := map[string]int64{}
	fences := map[string]time.Time{}
	for shed, ms := range loaded {
		if ms > now.UnixMilli() {
			marks[shed] = ms
			fences[shed] = time.UnixMilli(ms)
		}
	}
	ff := &fenceFile{path: path, log: log, marks: marks, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if err := ff.rewrite(); err != nil {
		return nil, nil, err
	}
	go ff.flushLoop()
	return ff, fences, nil
}

func readFence(path string, into map[string]int64) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("broker: reading the replay fence %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// A line that is not "shed ms" is a torn write; skip it.
		shed, v, ok := strings.Cut(sc.Text(), " ")
		ms, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || !config.ValidShedName(shed) {
			continue
		}
		into[shed] = max(into[shed], ms)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("broker: reading the replay fence %s: %w", path, err)
	}
	return nil
}

// rewrite replaces the file with one line per mark (a temporary file
// renamed over it) and appends to the new file from then on.
func (ff *fenceFile) rewrite() error {
	if err := os.MkdirAll(filepath.Dir(ff.path), 0o700); err != nil {
		return fmt.Errorf("broker: replay fence: %w", err)
	}
	var b strings.Builder
	for shed, ms := range ff.marks {
		fmt.Fprintf(&b, "%s %d\n", shed, ms)
	}
	tmp := ff.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("broker: replay fence: %w", err)
	}
	_, err = f.WriteString(b.String())
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, ff.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("broker: rewriting the replay fence %s: %w", ff.path, err)
	}
	nf, err := os.OpenFile(ff.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("broker: replay fence: %w", err)
	}
	if ff.f != nil {
		ff.f.Close()
	}
	ff.f, ff.lines = nf, len(ff.marks)
	return nil
}

// raise makes shed's mark at least ts, writing it before it returns when it
// moves. An error means the mark is not written (or, while the fence
// fails, not flushed) and the request that raised it must be refused.
func (ff *fenceFile) raise(shed string, ts time.Time) error {
	ms := ts.UnixMilli()
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ms <= ff.marks[shed] {
		return nil
	}
	if ff.f == nil {
		return errors.New("broker: replay fence closed")
	}
	q := fenceQuantum.Milliseconds()
	mark := max((ms+q-1)/q*q, ff.marks[shed])
	if _, err := fmt.Fprintf(ff.f, "%s %d\n", shed, mark); err != nil {
		return ff.failLocked(fmt.Errorf("broker: writing the replay fence %s: %w", ff.path, err))
	}
	if ff.err != nil {
		// The flusher may be what failed: only a mark that is on disk
		// says the file is whole again.
		if err := ff.f.Sync(); err != nil {
			return ff.failLocked(fmt.Errorf("broker: flushing the replay fence %s: %w", ff.path, err))
		}
		ff.log.Warn("replay fence written again; requests dated ahead of the host clock are served", "path", ff.path, "was", ff.err.Error(), "for", time.Since(ff.since).Round(time.Millisecond))
		ff.err = nil
	}
	ff.marks[shed] = mark
	ff.lines++
	if ff.lines > fenceCompactAt {
		if err := ff.rewrite(); err != nil {
			// The appended file is still whole; compact next time.
			ff.log.Warn("replay fence not compacted", "err", err)
		}
	}
	select {
	case ff.kick <- struct{}{}:
	default:
	}
	return nil
}

// failLocked makes the fence fail with err, saying so once when it starts.
func (ff *fenceFile) failLocked(err error) error {
	if ff.err == nil {
		ff.since = time.Now()
		ff.log.Error("replay fence failing; requests dated ahead of the host clock are refused until it is written again", "err", err)
	}
	ff.err = err
	return err
}

func (ff *fenceFile) state() FenceState {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	s := FenceState{Path: ff.path}
	if ff.err != nil {
		s.Err, s.Since = ff.err.Error(), ff.since
	}
	return s
}

// flushLoop fsyncs right behind the writes.
func (ff *fenceFile) flushLoop() {
	defer close(ff.done)
	for range ff.kick {
		ff.mu.Lock()
		f := ff.f
		ff.mu.Unlock()
		if f == nil {
			continue
		}
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			ff.mu.Lock()
			ff.failLocked(fmt.Errorf("broker: flushing the replay fence %s: %w", ff.path, err))
			ff.mu.Unlock()
		}
	}
}

func (ff *fenceFile) close() error {
	ff.closeOnce.Do(func() {
		ff.mu.Lock()
		f := ff.f
		ff.f = nil
		ff.mu.Unlock()
		close(ff.kick)
		<-ff.done
		if f != nil {
			ff.cerr = errors.Join(f.Sync(), f.Close())
		}
	})
	return ff.cerr
}
