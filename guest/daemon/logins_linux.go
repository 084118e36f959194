package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ttyActivity is the newest use of a login session's terminal under dir
// (/dev/pts): typing updates its access time and output its modification
// time, which is how w(1) tells a session's idle time.
func ttyActivity(dir string) time.Time {
	var newest time.Time
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() == "ptmx" {
			continue // the multiplexer, not a session
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, e.Name()), &st) != nil {
			continue
		}
		for _, ts := range []syscall.Timespec{st.Atim, st.Mtim} {
			if t := time.Unix(ts.Unix()); t.After(newest) {
				newest = t
			}
		}
	}
	return newest
}
