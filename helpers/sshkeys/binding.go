package sshkeys

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
	"golang.org/x/crypto/ssh/agent"
)

// bindings holds, per shed and guest agent connection, the ssh sessions
// the guest's ssh bound the connection to (session-bind@openssh.com) and
// the backend connection those bindings live on when the backend keeps them.
type bindings struct {
	backend  agent.ExtendedAgent
	upstream func(what string, err error) error

	mu    sync.Mutex
	sheds map[string]map[uint64]*agentConnState
}

const (
	maxBoundConns   = 64 // per shed; the least recently used is dropped
	maxBindsPerConn = 16 // as OpenSSH's agent
	boundConnIdle   = 15 * time.Minute
)

// sessioner is a backend whose session-bind state lives on a connection
// (*Backend in agent-forward mode).
type sessioner interface {
	Session() (Session, error)
}

// Per guest agent connection state: the sessions ssh bound it to, and the
// backend connection those bindings live on when the backend keeps them.
type agentConnState struct {
	binds []*SessionBind
	sess  Session
	used  time.Time
}

// agentFor checks a login against the sessions this guest connection bound
// (as OpenSSH's agent does: a connection bound for a login signs only for
// that session and server) and picks the backend connection to sign on.
func (b *bindings) agentFor(shed string, conn uint64, sd SignData) (agent.ExtendedAgent, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.sheds[shed][conn]
	if st == nil || len(st.binds) == 0 {
		return b.backend, nil
	}
	st.used = time.Now()
	last := st.binds[len(st.binds)-1]
	if sd.Kind == KindUserAuth && !last.Forwarding {
		if !bytes.Equal(sd.SessionID, last.SessionID) {
			return nil, bus.Errorf(bus.CodeNotAllowed, "this login is for a different ssh session than the one bound on this agent connection")
		}
		if sd.HostKey != nil && !bytes.Equal(sd.HostKey, last.HostKey) {
			return nil, bus.Errorf(bus.CodeNotAllowed, "this login names a different server than the one bound on this agent connection")
		}
	}
	if st.sess != nil {
		return st.sess, nil
	}
	return b.backend, nil
}

// hops is a copy of the bindings of (shed, conn), oldest first.
func (b *bindings) hops(shed string, conn uint64) []*SessionBind {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.sheds[shed][conn]; st != nil {
		return slices.Clone(st.binds)
	}
	return nil
}

// hostKey is the host key bound on (shed, conn) for the session sid, or nil.
func (b *bindings) hostKey(shed string, conn uint64, sid []byte) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.sheds[shed][conn]; st != nil {
		for _, sb := range slices.Backward(st.binds) {
			if bytes.Equal(sb.SessionID, sid) {
				return sb.HostKey
			}
		}
	}
	return nil
}

// bind records sb for (shed, conn), opening a backend session for the
// connection on its first binding when the backend keeps bindings.
func (b *bindings) bind(shed string, conn uint64, sb *SessionBind) (*agentConnState, error) {
	b.mu.Lock()
	conns := b.sheds[shed]
	if conns == nil {
		conns = make(map[uint64]*agentConnState)
		b.sheds[shed] = conns
	}
	if !sb.Forwarding && boundElsewhere(conns, conn, sb.SessionID) {
		b.mu.Unlock()
		return nil, bus.Errorf(bus.CodeNotAllowed, "this ssh session is already bound on another agent connection (a replayed session-bind)")
	}
	st := conns[conn]
	if st != nil {
		if len(st.binds) >= maxBindsPerConn {
			b.mu.Unlock()
			return nil, bus.Errorf(bus.CodeNotAllowed, "too many ssh sessions bound on one agent connection")
		}
		for _, old := range st.binds {
			switch {
			case !old.Forwarding:
				b.mu.Unlock()
				return nil, bus.Errorf(bus.CodeNotAllowed, "this agent connection is already bound to an ssh login")
			case bytes.Equal(old.SessionID, sb.SessionID) && bytes.Equal(old.HostKey, sb.HostKey):
				b.mu.Unlock()
				return st, nil
			case bytes.Equal(old.SessionID, sb.SessionID):
				b.mu.Unlock()
				return nil, bus.Errorf(bus.CodeNotAllowed, "this ssh session is already bound to another server")
			}
		}
		st.binds = append(st.binds, sb)
		st.used = time.Now()
		b.mu.Unlock()
		return st, nil
	}
	evicted := b.evictLocked(conns)
	st = &agentConnState{binds: []*SessionBind{sb}, used: time.Now()}
	conns[conn] = st
	b.mu.Unlock()
	closeAll(evicted)
	if so, ok := b.backend.(sessioner); ok {
		sess, err := so.Session()
		switch {
		case errors.Is(err, agent.ErrExtensionUnsupported):
		case err != nil:
			b.unbind(shed, conn)
			return nil, b.upstream("binding an ssh session", err)
		default:
			b.mu.Lock()
			st.sess = sess
			b.mu.Unlock()
		}
	}
	return st, nil
}

// boundElsewhere reports whether a connection other than conn bound the
// session sid for a login. ssh binds a login once, on the connection it
// signs on; the same bind on a second connection is a replay.
func boundElsewhere(conns map[uint64]*agentConnState, conn uint64, sid []byte) bool {
	for id, st := range conns {
		if id == conn {
			continue
		}
		for _, old := range st.binds {
			if !old.Forwarding && bytes.Equal(old.SessionID, sid) {
				return true
			}
		}
	}
	return false
}

// evictLocked makes room for one more bound connection of a shed: the idle
// ones go, then the least recently used. The caller closes what it returns.
func (b *bindings) evictLocked(conns map[uint64]*agentConnState) []Session {
	var out []Session
	drop := func(id uint64) {
		if st := conns[id]; st.sess != nil {
			out = append(out, st.sess)
		}
		delete(conns, id)
	}
	now := time.Now()
	for id, st := range conns {
		if now.Sub(st.used) > boundConnIdle {
			drop(id)
		}
	}
	for len(conns) >= maxBoundConns {
		var oldest uint64
		var t time.Time
		for id, st := range conns {
			if t.IsZero() || st.used.Before(t) {
				oldest, t = id, st.used
			}
		}
		drop(oldest)
	}
	return out
}

func (b *bindings) unbind(shed string, conn uint64) {
	b.mu.Lock()
	st := b.sheds[shed][conn]
	delete(b.sheds[shed], conn)
	b.mu.Unlock()
	if st != nil && st.sess != nil {
		st.sess.Close()
	}
}

// forget drops a detached shed's bindings and their backend connections.
func (b *bindings) forget(shed string) {
	b.mu.Lock()
	conns := b.sheds[shed]
	delete(b.sheds, shed)
	b.mu.Unlock()
	var sess []Session
	for _, st := range conns {
		if st.sess != nil {
			sess = append(sess, st.sess)
		}
	}
	closeAll(sess)
}

// closeAll forgets every shed.
func (b *bindings) forgetAll() {
	b.mu.Lock()
	var names []string
	for name := range b.sheds {
		names = append(names, name)
	}
	b.mu.Unlock()
	for _, n := range names {
		b.forget(n)
	}
}

func closeAll(ss []Session) {
	for _, c := range ss {
		c.Close()
	}
}
