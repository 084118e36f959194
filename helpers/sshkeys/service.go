package sshkeys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// sessioner is a backend whose session-bind state lives on a connection
// (*Backend in agent-forward mode).
type sessioner interface {
	Session() (Session, error)
}

// Service serves the ssh-agent namespace to the broker.
type Service struct {
	backend agent.ExtendedAgent
	known   *KnownHosts
	log     *slog.Logger

	refreshMu sync.Mutex
	keysMu    sync.Mutex
	keys      map[string]*agent.Key // wire blob → key, as the backend last listed them
	keysAt    time.Time

	mu    sync.Mutex
	sheds map[string]map[uint64]*agentConnState
}

var (
	_ helper.Service   = (*Service)(nil)
	_ helper.Forgetter = (*Service)(nil)
	_ sessioner        = (*Backend)(nil)
)

// ServiceOptions tune a Service.
type ServiceOptions struct {
	// KnownHosts names host keys in audit details and prompts (nil: none).
	KnownHosts *KnownHosts
	Log        *slog.Logger
}

// NewService signs with backend: a *Backend, or any agent (a keyring in tests).
func NewService(backend agent.ExtendedAgent, opts ServiceOptions) *Service {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{backend: backend, known: opts.KnownHosts, log: log, sheds: make(map[string]map[uint64]*agentConnState)}
}

// Per guest agent connection state: the sessions ssh bound it to, and the
// backend connection those bindings live on when the backend keeps them.
type agentConnState struct {
	binds []*SessionBind
	sess  Session
	used  time.Time
}

const (
	maxBoundConns    = 64 // per shed; the least recently used is dropped
	maxBindsPerConn  = 16 // as OpenSSH's agent
	boundConnIdle    = 15 * time.Minute
	keysStaleOnMiss  = 250 * time.Millisecond
	keysStaleOnFound = time.Minute
)

// Describe reads a request and says what it asks for. Keys outside the
// allowlist and unknown keys get no approval class: Serve refuses them.
func (s *Service) Describe(_ context.Context, r *helper.Request) (*helper.Action, error) {
	switch r.Op {
	case bus.OpList:
		return &helper.Action{Detail: "list"}, nil
	case bus.OpSign:
		req, err := decodeSign(r.Payload)
		if err != nil {
			return nil, err
		}
		return s.describeSign(r, req), nil
	case bus.OpExtension:
		req, err := decodeExtension(r.Payload)
		if err != nil {
			return nil, err
		}
		if req.Type != bus.ExtSessionBind {
			return &helper.Action{Detail: "extension " + clean(req.Type) + " refused"}, nil
		}
		b, err := ParseSessionBind(req.Contents)
		if err != nil {
			return &helper.Action{Detail: "session-bind invalid"}, nil
		}
		return &helper.Action{Detail: "session-bind " + keyDesc(b.HostKey) + s.hostNames(b.HostKey)}, nil
	case bus.OpAdd, bus.OpRemove:
		a := &helper.Action{Detail: r.Op + " refused: read-only"}
		if k, err := decodeKey(r.Payload); err == nil {
			a.Subject = fingerprint(k.Blob)
			a.Detail = r.Op + " " + keyDesc(k.Blob) + " refused: read-only"
		}
		return a, nil
	case bus.OpRemoveAll, bus.OpLock, bus.OpUnlock:
		return &helper.Action{Detail: r.Op + " refused: read-only"}, nil
	}
	return nil, bus.Errorf(bus.CodeBadRequest, "ssh-agent has no operation %.40q", r.Op)
}

func (s *Service) describeSign(r *helper.Request, req *bus.SSHSignRequest) *helper.Action {
	fp := fingerprint(req.Key)
	sd := ParseSignData(req.Data)
	a := &helper.Action{Subject: fp}
	var what, class, scope string
	switch sd.Kind {
	case KindUserAuth:
		dest := clean(sd.User) + "@" + s.destination(r.Shed, req.AgentConn, sd)
		a.Detail = keyDesc(req.Key) + " " + dest
		what, class = "sign in to "+dest, helper.ClassSSHLogin
	case KindSSHSig:
		ns := clean(sd.Namespace)
		a.Detail = keyDesc(req.Key) + " sshsig:" + ns
		what, class, scope = "sign with sshsig namespace \""+ns+"\"", helper.ClassSSHSign, sd.Namespace
		if sd.Namespace == "git" {
			what = "sign a git commit or tag"
		}
	default:
		a.Detail = keyDesc(req.Key) + " data"
		what, class = "sign data that is neither a login nor an sshsig", helper.ClassSSHSign
	}
	if !allowed(r, fp) {
		a.Detail += " not allowlisted"
		return a
	}
	k := s.lookup(req.Key)
	if k == nil {
		a.Detail += " not found"
		return a
	}
	a.Class, a.Scope = class, scope
	a.Prompt = fmt.Sprintf("%s wants to %s with %s (%s)", r.Shed, what, keyDesc(req.Key), clean(k.Comment))
	return a
}

// destination names the server of a login: the host key the hostbound
// method carries, else the one session-bind recorded for this connection.
func (s *Service) destination(shed string, conn uint64, sd SignData) string {
	hk := sd.HostKey
	if hk == nil {
		s.mu.Lock()
		if st := s.sheds[shed][conn]; st != nil {
			for _, b := range slices.Backward(st.binds) {
				if bytes.Equal(b.SessionID, sd.SessionID) {
					hk = b.HostKey
					break
				}
			}
		}
		s.mu.Unlock()
	}
	if hk == nil {
		return "unknown-host"
	}
	if names := s.known.Names(hk); len(names) > 0 {
		return clean(names[0])
	}
	return "unknown-host(" + fingerprint(hk) + ")"
}

func (s *Service) hostNames(hk []byte) string {
	if names := s.known.Names(hk); len(names) > 0 {
		return " " + clean(names[0])
	}
	return ""
}

// Serve lists, signs or binds.
func (s *Service) Serve(ctx context.Context, r *helper.Request, a *helper.Action) (any, error) {
	switch r.Op {
	case bus.OpList:
		return s.list(r, a)
	case bus.OpSign:
		req, err := decodeSign(r.Payload)
		if err != nil {
			return nil, err
		}
		return s.sign(r, req)
	case bus.OpExtension:
		req, err := decodeExtension(r.Payload)
		if err != nil {
			return nil, err
		}
		return s.extension(r, req)
	case bus.OpAdd, bus.OpRemove, bus.OpRemoveAll, bus.OpLock, bus.OpUnlock:
		return nil, bus.Errorf(bus.CodeNotAllowed, "%s", bus.SSHReadOnly)
	}
	return nil, bus.Errorf(bus.CodeBadRequest, "ssh-agent has no operation %.40q", r.Op)
}

func (s *Service) list(r *helper.Request, a *helper.Action) (any, error) {
	keys, err := s.refresh()
	if err != nil {
		return nil, s.upstream("listing keys", err)
	}
	out := bus.SSHListResponse{Keys: []bus.SSHKey{}}
	for _, k := range keys {
		if allowed(r, fingerprint(k.Blob)) {
			out.Keys = append(out.Keys, bus.SSHKey{Blob: k.Blob, Comment: k.Comment})
		}
	}
	a.Detail = fmt.Sprintf("%d keys", len(out.Keys))
	return out, nil
}

func (s *Service) sign(r *helper.Request, req *bus.SSHSignRequest) (any, error) {
	fp := fingerprint(req.Key)
	if !allowed(r, fp) {
		return nil, bus.Errorf(bus.CodeNotAllowed, "key %s is not allowed for shed %q; add it to sheds.%s.ssh.keys (or ssh.keys) in the spuff config on your computer", fp, r.Shed, r.Shed)
	}
	k := s.lookup(req.Key)
	if k == nil {
		return nil, bus.Errorf(bus.CodeKeyNotFound, "your computer has no key %s (%s); check `ssh-add -l` there", fp, s.where())
	}
	ag, err := s.agentFor(r.Shed, req.AgentConn, ParseSignData(req.Data))
	if err != nil {
		return nil, err
	}
	flags := agent.SignatureFlags(req.Flags)
	if !strings.HasPrefix(k.Format, ssh.KeyAlgoRSA) {
		// As OpenSSH's agent: the RSA hash flags mean nothing for other keys
		// (some backends would fail on them instead).
		flags &^= agent.SignatureFlagRsaSha256 | agent.SignatureFlagRsaSha512
	}
	sig, err := ag.SignWithFlags(k, req.Data, flags)
	if err != nil {
		s.invalidate()
		return nil, s.upstream("signing with "+fp, err)
	}
	return bus.SSHSignResponse{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}, nil
}

// agentFor checks a login against the sessions this guest connection bound
// (as OpenSSH's agent does: a connection bound for a login signs only for
// that session and server) and picks the backend connection to sign on.
func (s *Service) agentFor(shed string, conn uint64, sd SignData) (agent.ExtendedAgent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.sheds[shed][conn]
	if st == nil || len(st.binds) == 0 {
		return s.backend, nil
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
	return s.backend, nil
}

func (s *Service) extension(r *helper.Request, req *bus.SSHExtensionRequest) (any, error) {
	if req.Type != bus.ExtSessionBind {
		return nil, bus.Errorf(bus.CodeBadRequest, "agent extension %q is not brokered", clean(req.Type))
	}
	b, err := ParseSessionBind(req.Contents)
	if err != nil {
		return nil, bus.Errorf(bus.CodeBadRequest, "%v", err)
	}
	st, err := s.bind(r.Shed, req.AgentConn, b)
	if err != nil {
		return nil, err
	}
	if st.sess != nil {
		if _, err := st.sess.Extension(req.Type, req.Contents); err != nil && !errors.Is(err, agent.ErrExtensionUnsupported) {
			s.unbind(r.Shed, req.AgentConn)
			return nil, s.upstream("binding an ssh session", err)
		}
	}
	return bus.SSHExtensionResponse{}, nil
}

// bind records b for (shed, conn), opening a backend session for the
// connection on its first binding when the backend keeps bindings.
func (s *Service) bind(shed string, conn uint64, b *SessionBind) (*agentConnState, error) {
	s.mu.Lock()
	conns := s.sheds[shed]
	if conns == nil {
		conns = make(map[uint64]*agentConnState)
		s.sheds[shed] = conns
	}
	st := conns[conn]
	if st != nil {
		if len(st.binds) >= maxBindsPerConn {
			s.mu.Unlock()
			return nil, bus.Errorf(bus.CodeNotAllowed, "too many ssh sessions bound on one agent connection")
		}
		for _, old := range st.binds {
			switch {
			case !old.Forwarding:
				s.mu.Unlock()
				return nil, bus.Errorf(bus.CodeNotAllowed, "this agent connection is already bound to an ssh login")
			case bytes.Equal(old.SessionID, b.SessionID) && bytes.Equal(old.HostKey, b.HostKey):
				s.mu.Unlock()
				return st, nil
			case bytes.Equal(old.SessionID, b.SessionID):
				s.mu.Unlock()
				return nil, bus.Errorf(bus.CodeNotAllowed, "this ssh session is already bound to another server")
			}
		}
		st.binds = append(st.binds, b)
		st.used = time.Now()
		s.mu.Unlock()
		return st, nil
	}
	evicted := s.evictLocked(conns)
	st = &agentConnState{binds: []*SessionBind{b}, used: time.Now()}
	conns[conn] = st
	s.mu.Unlock()
	closeAll(evicted)
	if so, ok := s.backend.(sessioner); ok {
		sess, err := so.Session()
		switch {
		case errors.Is(err, agent.ErrExtensionUnsupported):
		case err != nil:
			s.unbind(shed, conn)
			return nil, s.upstream("binding an ssh session", err)
		default:
			s.mu.Lock()
			st.sess = sess
			s.mu.Unlock()
		}
	}
	return st, nil
}

// evictLocked makes room for one more bound connection of a shed: the idle
// ones go, then the least recently used. The caller closes what it returns.
func (s *Service) evictLocked(conns map[uint64]*agentConnState) []Session {
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

func (s *Service) unbind(shed string, conn uint64) {
	s.mu.Lock()
	st := s.sheds[shed][conn]
	delete(s.sheds[shed], conn)
	s.mu.Unlock()
	if st != nil && st.sess != nil {
		st.sess.Close()
	}
}

// Forget drops a detached shed's bindings and their backend connections.
func (s *Service) Forget(shed string) {
	s.mu.Lock()
	conns := s.sheds[shed]
	delete(s.sheds, shed)
	s.mu.Unlock()
	var sess []Session
	for _, st := range conns {
		if st.sess != nil {
			sess = append(sess, st.sess)
		}
	}
	closeAll(sess)
}

// Close forgets every shed.
func (s *Service) Close() error {
	s.mu.Lock()
	var names []string
	for name := range s.sheds {
		names = append(names, name)
	}
	s.mu.Unlock()
	for _, n := range names {
		s.Forget(n)
	}
	return nil
}

func closeAll(ss []Session) {
	for _, c := range ss {
		c.Close()
	}
}

// lookup finds a key the backend holds, listing again when the key is
// missing from a list older than keysStaleOnMiss: a key just added to the
// host agent shows up on the next sign without a list round trip per sign.
func (s *Service) lookup(blob []byte) *agent.Key {
	s.keysMu.Lock()
	k, at := s.keys[string(blob)], s.keysAt
	s.keysMu.Unlock()
	age := time.Since(at)
	if k != nil && age < keysStaleOnFound {
		return k
	}
	if k == nil && age < keysStaleOnMiss {
		return nil
	}
	// One list at a time: concurrent signs that all miss share its answer.
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	s.keysMu.Lock()
	fresh := s.keysAt.After(at)
	s.keysMu.Unlock()
	if !fresh {
		if _, err := s.refresh(); err != nil {
			s.log.Warn("sshkeys: listing keys failed", "err", err)
			return k
		}
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	return s.keys[string(blob)]
}

func (s *Service) refresh() ([]*agent.Key, error) {
	keys, err := s.backend.List()
	if err != nil {
		return nil, err
	}
	m := make(map[string]*agent.Key, len(keys))
	for _, k := range keys {
		m[string(k.Blob)] = k
	}
	s.keysMu.Lock()
	s.keys, s.keysAt = m, time.Now()
	s.keysMu.Unlock()
	return keys, nil
}

func (s *Service) invalidate() {
	s.keysMu.Lock()
	s.keysAt = time.Time{}
	s.keysMu.Unlock()
}

func (s *Service) where() string {
	if b, ok := s.backend.(*Backend); ok && b.Mode() == ModeLocalKeys {
		return "spuff signs with the unencrypted keys of ~/.ssh"
	}
	return "spuff signs with your ssh agent"
}

func (s *Service) upstream(what string, err error) error {
	s.log.Warn("sshkeys: "+what+" failed", "err", err)
	return bus.Errorf(bus.CodeUpstream, "%s on your computer failed (%v); check `ssh-add -l` there", what, err)
}

// allowed applies the shed's allowlist. A request without a configuration
// is a broker bug and is refused.
func allowed(r *helper.Request, fp string) bool {
	if r.Config == nil {
		return false
	}
	keys := r.Config.SSH.Keys
	if len(keys) == 0 {
		return true
	}
	for _, k := range keys {
		if normalizeFingerprint(k) == fp {
			return true
		}
	}
	return false
}

func normalizeFingerprint(s string) string {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if !strings.HasPrefix(s, "SHA256:") {
		s = "SHA256:" + s
	}
	return s
}

// fingerprint is ssh.FingerprintSHA256 of a wire blob, without parsing it.
func fingerprint(blob []byte) string {
	h := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// keyDesc is "TYPE SHA256:…" for a wire blob.
func keyDesc(blob []byte) string {
	typ := "unknown"
	if len(blob) >= 4 {
		if n := binary.BigEndian.Uint32(blob); uint64(n) <= uint64(len(blob)-4) {
			typ = clean(string(blob[4 : 4+n]))
		}
	}
	return typ + " " + fingerprint(blob)
}

// clean makes guest-chosen text safe to show a human: printable, one line, short.
func clean(s string) string {
	const max = 80
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) || r == '\u2028' || r == '\u2029' {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func decodeSign(p json.RawMessage) (*bus.SSHSignRequest, error) {
	var req bus.SSHSignRequest
	if err := bus.DecodePayload(bus.NSSSHAgent, p, &req); err != nil {
		return nil, err
	}
	if len(req.Key) == 0 {
		return nil, bus.Errorf(bus.CodeBadRequest, "ssh-agent sign: no key")
	}
	return &req, nil
}

func decodeExtension(p json.RawMessage) (*bus.SSHExtensionRequest, error) {
	var req bus.SSHExtensionRequest
	if err := bus.DecodePayload(bus.NSSSHAgent, p, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

func decodeKey(p json.RawMessage) (*bus.SSHKey, error) {
	var k bus.SSHKey
	if err := bus.DecodePayload(bus.NSSSHAgent, p, &k); err != nil {
		return nil, err
	}
	if _, err := ssh.ParsePublicKey(k.Blob); err != nil {
		return nil, bus.Errorf(bus.CodeBadRequest, "ssh-agent: key does not parse")
	}
	return &k, nil
}
