package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTTYActivity: the newest access or modification of a session's
// terminal counts; the multiplexer and a dir without terminals do not.
func TestTTYActivity(t *testing.T) {
	dir := t.TempDir()
	if got := ttyActivity(dir); !got.IsZero() {
		t.Fatalf("no terminals: %s", got)
	}
	base := time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)
	set := func(name string, atime, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, atime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	set("0", base, base.Add(time.Minute))   // output a minute later
	set("1", base.Add(2*time.Minute), base) // typed into two minutes later
	set("ptmx", base.Add(time.Hour), base.Add(time.Hour))
	if got := ttyActivity(dir); !got.Equal(base.Add(2 * time.Minute)) {
		t.Fatalf("newest activity %s, want %s", got, base.Add(2*time.Minute))
	}
}
