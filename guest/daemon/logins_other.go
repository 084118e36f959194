//go:build !linux

package daemon

import "time"

// ttyActivity watches nothing where there is no /dev/pts to read: the guest
// runs on Linux, and elsewhere only builds.
func ttyActivity(string) time.Time { return time.Time{} }

// tellTerminals has no terminals to write to off Linux.
func tellTerminals(string, string) int { return 0 }

// sessionActivity watches only terminals off Linux (none).
func sessionActivity(_, dir string) time.Time { return ttyActivity(dir) }
