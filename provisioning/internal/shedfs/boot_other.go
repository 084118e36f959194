//go:build !linux && !darwin

package shedfs

import "time"

// bootTime is unknown here: no pidfile counts as older than the boot.
func bootTime() (time.Time, bool) { return time.Time{}, false }
