package broker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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

// fenceProbeEvery is how often a failing fence writes and flushes a line
// of its own, so that it heals once the disk takes writes again even when
// no request needs a new mark.
const fenceProbeEvery = 5 * time.Second

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
// a mark is refused until a line is again written and flushed, which each
// such request tries in turn, and the flusher every fenceProbeEvery.
// Requests dated at or behind the host clock, and those behind a mark
// already written, need no mark and are served.
type fenceFile struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	f     *os.File
	marks map[string]int64 // unix ms: this run's marks, and the loaded ones
	lines int              // lines in the file
	err   error            // failing since since: a line must be written and flushed to heal it
	since time.Time
	probe time.Duration // fenceProbeEvery

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
	ff := &fenceFile{path: path, log: log, marks: marks, probe: fenceProbeEvery, kick: make(chan struct{}, 1), done: make(chan struct{})}
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
	if err := ff.confirmLocked(); err != nil {
		return err
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

// confirmLocked heals a failing fence once what was just written is
// flushed: the flusher may be what failed, and only a line on disk says
// the file takes writes again.
func (ff *fenceFile) confirmLocked() error {
	if ff.err == nil {
		return nil
	}
	if err := ff.f.Sync(); err != nil {
		return ff.failLocked(fmt.Errorf("broker: flushing the replay fence %s: %w", ff.path, err))
	}
	ff.log.Warn("replay fence written again; requests dated ahead of the host clock are served", "path", ff.path, "was", ff.err.Error(), "for", time.Since(ff.since).Round(time.Millisecond))
	ff.err = nil
	return nil
}

// flushLoop fsyncs right behind the writes and, while the fence fails,
// probes it every ff.probe.
func (ff *fenceFile) flushLoop() {
	defer close(ff.done)
	var probe <-chan time.Time
	for {
		select {
		case _, open := <-ff.kick:
			if !open {
				return
			}
			ff.flush()
		case <-probe:
			ff.probeOnce()
		}
		ff.mu.Lock()
		probe = nil
		if ff.err != nil {
			probe = time.After(ff.probe)
		}
		ff.mu.Unlock()
	}
}

func (ff *fenceFile) flush() {
	ff.mu.Lock()
	f := ff.f
	ff.mu.Unlock()
	if f == nil {
		return
	}
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		ff.mu.Lock()
		ff.failLocked(fmt.Errorf("broker: flushing the replay fence %s: %w", ff.path, err))
		ff.mu.Unlock()
	}
}

// probeOnce writes a line and flushes it while the fence fails: a mark
// already made, said again (readFence keeps the greatest), or with none a
// line readFence skips.
func (ff *fenceFile) probeOnce() {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ff.err == nil || ff.f == nil {
		return
	}
	line := "probe\n"
	for shed, ms := range ff.marks {
		line = fmt.Sprintf("%s %d\n", shed, ms)
		break
	}
	if _, err := io.WriteString(ff.f, line); err != nil {
		ff.failLocked(fmt.Errorf("broker: writing the replay fence %s: %w", ff.path, err))
		return
	}
	ff.lines++
	_ = ff.confirmLocked()
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
