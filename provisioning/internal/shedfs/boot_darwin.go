package shedfs

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootTime is when this host booted, as the kernel keeps it.
func bootTime() (time.Time, bool) {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(tv.Unix()), true
}
