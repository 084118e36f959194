//go:build !linux && !darwin

package control

import (
	"errors"
	"net"
)

// peerUID cannot be learnt here, so every peer is refused.
func peerUID(*net.UnixConn) (int, error) {
	return -1, errors.New("control: peer credentials are not supported on this platform")
}
