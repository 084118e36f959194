package testenv

import (
	"io"
	"os"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
)

// ReadSeed reads a NoCloud seed ISO: each file at its root by name, and the
// volume label.
func ReadSeed(t testing.TB, path string) (files map[string]string, label string) {
	t.Helper()
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadOnly), diskfs.WithSectorSize(2048))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(0)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fsys.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	files = map[string]string{}
	for _, e := range ents {
		f, err := fsys.OpenFile(e.Name(), os.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	// go-diskfs hands the 32-byte volume identifier back with its padding.
	return files, strings.TrimRight(fsys.Label(), "\x00 ")
}
