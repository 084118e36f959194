package bus

import (
	"net"
	"testing"

	"github.com/mdlayher/vsock"
)

// fakeListener hands out connections from the given vsock peers, to test
// the host-only filter without a hypervisor.
type fakeListener struct {
	net.Listener
	peers  []uint32
	closed []uint32
}

type peerConn struct {
	net.Conn
	cid uint32
	l   *fakeListener
}

func (p *peerConn) RemoteAddr() net.Addr { return &vsock.Addr{ContextID: p.cid, Port: 1234} }
func (p *peerConn) Close() error         { p.l.closed = append(p.l.closed, p.cid); return nil }

func (f *fakeListener) Accept() (net.Conn, error) {
	if len(f.peers) == 0 {
		return nil, net.ErrClosed
	}
	cid := f.peers[0]
	f.peers = f.peers[1:]
	return &peerConn{cid: cid, l: f}, nil
}

func TestVsockListenerAcceptsOnlyTheHost(t *testing.T) {
	fl := &fakeListener{peers: []uint32{3, 7, vsock.Host, 4}}
	l := hostOnly{fl}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr().(*vsock.Addr).ContextID != vsock.Host {
		t.Fatalf("accepted CID %v", c.RemoteAddr())
	}
	if len(fl.closed) != 2 || fl.closed[0] != 3 || fl.closed[1] != 7 {
		t.Fatalf("other VMs' connections not dropped: %v", fl.closed)
	}
}
