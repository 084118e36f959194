package sshagent

import (
	"net"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh/agent"
)

type countingConn struct {
	net.Conn
	writes, reads atomic.Int32
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// Each agent reply leaves in one write: ServeAgent writes the length and
// the body apart, which costs the client an extra wake-up. And each
// request is read in one read, not its length and then its body.
func TestReplyIsOneWrite(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	cc := &countingConn{Conn: server}
	go func() {
		_ = agent.ServeAgent(agent.NewKeyring(), newOneWrite(cc))
		server.Close()
	}()
	ag := agent.NewClient(client)
	for i := range 3 {
		if _, err := ag.List(); err != nil {
			t.Fatal(err)
		}
		if n := cc.writes.Load(); n != int32(i+1) {
			t.Fatalf("%d writes for %d replies", n, i+1)
		}
	}
	// The server may already wait in the read of a fourth request.
	if n := cc.reads.Load(); n > 4 {
		t.Fatalf("%d reads for 3 requests", n)
	}
}
