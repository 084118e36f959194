package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// tellTerminals writes text to each login-session terminal under dir that
// this user owns (the shed's user runs the guest) and says on how many it
// was shown. Each terminal's times are put back as they were: the idle
// clock reads them, and a notice is not activity.
func tellTerminals(dir, text string) int {
	entries, _ := os.ReadDir(dir)
	shown := 0
	for _, e := range entries {
		if e.Name() == "ptmx" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || int(st.Uid) != os.Getuid() {
			continue
		}
		// O_NOCTTY: a daemon must never acquire a user's terminal;
		// O_NONBLOCK: a terminal stopped with ^S must not hang it.
		f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if _, err := f.WriteString(text); err == nil {
			shown++
		}
		f.Close()
		_ = os.Chtimes(p, time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()))
	}
	return shown
}

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
