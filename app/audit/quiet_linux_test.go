package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNamesFile: the quiet path check says yes only while the path names
// the very file that is open, so that Write's fast path is taken and
// never hides a rotation.
func TestNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cpath := append([]byte(p), 0)
	if !namesFile(cpath, fi) {
		t.Fatal("the path of the open file is not recognised")
	}
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if namesFile(cpath, fi) {
		t.Fatal("a path with nothing at it names the open file")
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if namesFile(cpath, fi) {
		t.Fatal("a path naming another file names the open file")
	}
}
