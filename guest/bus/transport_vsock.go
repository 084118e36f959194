package bus

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mdlayher/vsock"
)

var noDeadline time.Time

func dialVsock(ctx context.Context, t Target) (io.ReadWriteCloser, error) {
	c, err := vsock.DialContext(ctx, t.CID, t.Port, nil)
	if err != nil {
		return nil, fmt.Errorf("bus: dialing %s: %w", t, err)
	}
	return c, nil
}

func listenVsock(port uint32) (net.Listener, error) {
	l, err := vsock.Listen(port, nil)
	if err != nil {
		return nil, fmt.Errorf("bus: vsock listen on port %d: %w", port, err)
	}
	return hostOnly{l}, nil
}

// hostOnly drops vsock connections from anything but the host, so another VM
// on the same hypervisor cannot speak for this shed's host.
type hostOnly struct{ net.Listener }

func (h hostOnly) Accept() (net.Conn, error) {
	for {
		c, err := h.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if isHost(c.RemoteAddr()) {
			return c, nil
		}
		c.Close()
	}
}

func isHost(a net.Addr) bool {
	va, ok := a.(*vsock.Addr)
	return ok && va.ContextID == vsock.Host
}
