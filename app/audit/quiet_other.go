//go:build !linux

package audit

import "os"

func quiet(f *os.File) file { return f }

// namesFile reports whether path (NUL-terminated) still names the file fi
// describes.
func namesFile(path []byte, fi os.FileInfo) bool {
	cur, err := os.Stat(string(path[:len(path)-1]))
	return err == nil && os.SameFile(cur, fi)
}
