//go:build !unix

package control

import "os"

// lockFile takes no lock where flock is missing: the socket's own check
// stands alone there.
func lockFile(*os.File) error { return nil }
