package shedfs

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootTime is when this host booted: now less the uptime, which counts
// time suspended too (CLOCK_BOOTTIME), so a laptop's sleep does not move it.
func bootTime() (time.Time, bool) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return time.Time{}, false
	}
	return time.Now().Add(-time.Duration(si.Uptime) * time.Second), true
}
