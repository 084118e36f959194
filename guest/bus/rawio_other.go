//go:build !linux

package bus

import (
	"io"
	"net"
)

func rawStreamOf(rw io.ReadWriteCloser) io.ReadWriteCloser { return rw }

// QuietConn returns c: raw socket calls are a Linux measure.
func QuietConn(c net.Conn) net.Conn { return c }
