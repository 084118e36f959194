package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotationIsNoticed: after `rm log` or `mv log log.1` (as logrotate
// does), the next line goes to a new file at the path, after a line that
// says the log was reopened.
func TestRotationIsNoticed(t *testing.T) {
	for name, rotate := range map[string]func(p string) error{
		"rm": os.Remove,
		"mv": func(p string) error { return os.Rename(p, p+".1") },
		"mv and create": func(p string) error {
			if err := os.Rename(p, p+".1"); err != nil {
				return err
			}
			return os.WriteFile(p, nil, 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.log")
			var logBuf bytes.Buffer
			w, err := Open(p, slogTo(&logBuf))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.Write(context.Background(), Record{TS: ts, Shed: "before"}); err != nil {
				t.Fatal(err)
			}
			if err := rotate(p); err != nil {
				t.Fatal(err)
			}
			if err := w.Write(context.Background(), Record{TS: ts, Shed: "after"}); err != nil {
				t.Fatal(err)
			}
			recs := readLines(t, p)
			if len(recs) != 2 || recs[0].NS != NSAudit || recs[0].Op != OpReopen || recs[1].Shed != "after" {
				t.Fatalf("the path holds %+v; want the reopen line, then the line written after %s", recs, name)
			}
			if !strings.Contains(recs[0].Detail, p) {
				t.Errorf("reopen line %q does not name the path", recs[0].Detail)
			}
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("reopened log: %v, %v", fi, err)
			}
			if !strings.Contains(logBuf.String(), "reopen") {
				t.Errorf("the reopen was not logged: %q", logBuf.String())
			}
			if s := w.State(); s.Err != "" {
				t.Errorf("state after a good reopen: %+v", s)
			}
		})
	}
}

// TestRotationReopenFailureFailsClosed: when the path cannot be opened again,
// the request is denied, every later one too, until it can.
func TestRotationReopenFailureFailsClosed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	p := filepath.Join(dir, "a.log")
	var logBuf bytes.Buffer
	w, err := Open(p, slogTo(&logBuf))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(context.Background(), Record{TS: ts, Shed: "before"}); err != nil {
		t.Fatal(err)
	}
	// Something that is not a regular file now holds the name: reopening
	// must refuse it, as Open does.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Write(context.Background(), Record{TS: ts, Shed: "lost"}); err == nil {
			t.Fatalf("write %d succeeded with no file at the path", i)
		}
	}
	if s := w.State(); s.Err == "" || s.Since.IsZero() {
		t.Fatalf("state while the log cannot be reopened: %+v", s)
	}
	if !strings.Contains(logBuf.String(), "denied") {
		t.Errorf("failure not logged: %q", logBuf.String())
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), Record{TS: ts, Shed: "back"}); err != nil {
		t.Fatalf("write once the path can be opened again: %v", err)
	}
	if s := w.State(); s.Err != "" {
		t.Fatalf("state after recovery: %+v", s)
	}
	recs := readLines(t, p)
	if len(recs) != 2 || recs[0].Op != OpReopen || recs[1].Shed != "back" {
		t.Fatalf("log after recovery: %+v", recs)
	}
	if !strings.Contains(logBuf.String(), "healthy again") {
		t.Errorf("recovery not logged: %q", logBuf.String())
	}
}
