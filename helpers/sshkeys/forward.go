package sshkeys

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// forwardAgent talks to the host's own agent (OpenSSH, Secretive,
// 1Password…) at SSH_AUTH_SOCK. Each operation takes a connection to itself
// from a small pool of idle ones; a connection is never shared by two
// operations at once, so a slow answer (a Touch ID prompt in the host
// agent) holds up only its own caller.
type forwardAgent struct {
	readOnly
	path    string
	timeout time.Duration // per operation; a human may be asked by the host agent
	maxIdle int

	mu     sync.Mutex
	idle   []*agentConn
	closed bool
}

var _ agent.ExtendedAgent = (*forwardAgent)(nil)

func newForwardAgent(path string) *forwardAgent {
	return &forwardAgent{path: path, timeout: 2 * time.Minute, maxIdle: 8}
}

// agentConn is one connection to the host agent. The client is built in
// its serialised mode (the conn is hidden behind a plain ReadWriter):
// requests on it never overlap, so it needs no reader goroutine. Its reads
// are buffered, so the client's two reads of a reply (the length, then the
// body) take one read(2); 1 KiB holds any sign reply but RSA-4096's. The
// agent sends nothing but replies, so the buffer is empty between
// operations.
type agentConn struct {
	nc       net.Conn
	r        *bufio.Reader
	c        agent.ExtendedAgent
	writeErr bool // a write failed: the request never reached the agent
}

func (c *agentConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *agentConn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	if err != nil {
		c.writeErr = true
	}
	return n, err
}

func (f *forwardAgent) dial() (*agentConn, error) {
	nc, err := net.DialTimeout("unix", f.path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("sshkeys: reaching your ssh agent at %s: %w", f.path, err)
	}
	// Read and written with raw system calls, as the bus is: spuff-app is
	// idle while the agent thinks, and a plain read after that wakes the
	// runtime's monitor thread on every sign.
	return newAgentConn(bus.QuietConn(nc)), nil
}

func newAgentConn(nc net.Conn) *agentConn {
	c := &agentConn{nc: nc, r: bufio.NewReaderSize(nc, 1<<10)}
	c.c = agent.NewClient(struct{ io.ReadWriter }{c})
	return c
}

func (f *forwardAgent) get() (c *agentConn, pooled bool, err error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, false, errors.New("sshkeys: backend closed")
	}
	if n := len(f.idle); n > 0 {
		c = f.idle[n-1]
		f.idle = f.idle[:n-1]
		f.mu.Unlock()
		return c, true, nil
	}
	f.mu.Unlock()
	c, err = f.dial()
	return c, false, err
}

func (f *forwardAgent) put(c *agentConn) {
	f.mu.Lock()
	if !f.closed && len(f.idle) < f.maxIdle {
		f.idle = append(f.idle, c)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	c.nc.Close()
}

// do runs one operation on a connection of its own. A failed operation
// closes its connection: after an error the stream's state is unknown.
// When the request could not even be written on a pooled connection (the
// agent restarted and closed it), it is retried once on a fresh one;
// nothing else is retried, so the host agent never asks its human twice.
func (f *forwardAgent) do(op func(agent.ExtendedAgent) error) error {
	for attempt := 0; ; attempt++ {
		c, pooled, err := f.get()
		if err != nil {
			return err
		}
		c.writeErr = false
		_ = c.nc.SetDeadline(time.Now().Add(f.timeout))
		err = op(c.c)
		if err == nil {
			f.put(c)
			return nil
		}
		c.nc.Close()
		if !(pooled && c.writeErr && attempt == 0) {
			return err
		}
	}
}

// Close drops the idle connections.
func (f *forwardAgent) Close() error {
	f.mu.Lock()
	idle := f.idle
	f.idle, f.closed = nil, true
	f.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
	return nil
}

func (f *forwardAgent) List() (keys []*agent.Key, err error) {
	err = f.do(func(a agent.ExtendedAgent) error {
		keys, err = a.List()
		return err
	})
	return keys, err
}

func (f *forwardAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return f.SignWithFlags(key, data, 0)
}

func (f *forwardAgent) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (sig *ssh.Signature, err error) {
	err = f.do(func(a agent.ExtendedAgent) error {
		sig, err = a.SignWithFlags(key, data, flags)
		return err
	})
	return sig, err
}

// Extension on a pooled connection would bind whichever connection it
// happened to get; session-bind goes through session instead.
func (f *forwardAgent) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}

func (f *forwardAgent) Signers() ([]ssh.Signer, error) {
	return nil, errors.New("sshkeys: signers are not served")
}

// session opens a connection of its own for one guest agent connection
// that sent session-bind. OpenSSH's agent keeps bindings per connection and
// checks later signs against them, so the guest connection's binding and
// signs must all travel on one host connection.
func (f *forwardAgent) session() (Session, error) {
	c, err := f.dial()
	if err != nil {
		return nil, err
	}
	return &forwardSession{f: f, c: c}, nil
}

// Session is a connection to the backend bound to one guest agent
// connection, closed when that binding is forgotten.
type Session interface {
	agent.ExtendedAgent
	io.Closer
}

type forwardSession struct {
	readOnly
	f  *forwardAgent
	mu sync.Mutex
	c  *agentConn
}

var _ Session = (*forwardSession)(nil)

func (s *forwardSession) call(op func(agent.ExtendedAgent) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return errors.New("sshkeys: session closed")
	}
	_ = s.c.nc.SetDeadline(time.Now().Add(s.f.timeout))
	return op(s.c.c)
}

func (s *forwardSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		return nil
	}
	err := s.c.nc.Close()
	s.c = nil
	return err
}

func (s *forwardSession) List() (keys []*agent.Key, err error) {
	err = s.call(func(a agent.ExtendedAgent) error {
		keys, err = a.List()
		return err
	})
	return keys, err
}

func (s *forwardSession) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return s.SignWithFlags(key, data, 0)
}

func (s *forwardSession) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (sig *ssh.Signature, err error) {
	err = s.call(func(a agent.ExtendedAgent) error {
		sig, err = a.SignWithFlags(key, data, flags)
		return err
	})
	return sig, err
}

func (s *forwardSession) Extension(typ string, contents []byte) (res []byte, err error) {
	err = s.call(func(a agent.ExtendedAgent) error {
		res, err = a.Extension(typ, contents)
		return err
	})
	return res, err
}

func (s *forwardSession) Signers() ([]ssh.Signer, error) {
	return nil, errors.New("sshkeys: signers are not served")
}
