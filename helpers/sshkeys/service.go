package sshkeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Service serves the ssh-agent namespace to the broker.
type Service struct {
	backend agent.ExtendedAgent
	known   *KnownHosts
	log     *slog.Logger

	cache keyCache
	binds bindings
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
	s := &Service{backend: backend, known: opts.KnownHosts, log: log}
	s.cache = keyCache{backend: backend, log: log}
	s.binds = bindings{backend: backend, upstream: s.upstream, sheds: make(map[string]map[uint64]*agentConnState)}
	return s
}

// Describe reads a request and says what it asks for. Keys outside the
// allowlist and unknown keys get no approval class: Serve refuses them.
func (s *Service) Describe(_ context.Context, r *helper.Request) (*helper.Action, error) {
	switch r.Op {
	case bus.OpList:
		return &helper.Action{Detail: "list"}, nil
	case bus.OpSign:
		sr, err := s.readSign(r.Payload)
		if err != nil {
			return nil, err
		}
		a := s.describeSign(r, sr)
		a.Parsed = sr
		return a, nil
	case bus.OpExtension:
		er, err := readExtension(r.Payload)
		if err != nil {
			return nil, err
		}
		a := &helper.Action{Parsed: er}
		switch {
		case er.Type != bus.ExtSessionBind:
			a.Detail = "extension " + clean(er.Type) + " refused"
		case er.bindErr != nil:
			a.Detail = "session-bind invalid"
		default:
			a.Detail = "session-bind " + keyDesc(er.bind.HostKey) + s.hostNames(er.bind.HostKey)
		}
		return a, nil
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

// signRequest is a sign request as Describe read it, left in the Action
// for Serve: the payload, its key's fingerprint and description, and what
// the data is.
type signRequest struct {
	*bus.SSHSignRequest
	fp   string // fingerprint(Key)
	desc string // keyDesc(Key)
	sd   SignData
}

func (s *Service) readSign(p json.RawMessage) (*signRequest, error) {
	req, err := decodeSign(p)
	if err != nil {
		return nil, err
	}
	sr := &signRequest{SSHSignRequest: req, sd: ParseSignData(req.Data)}
	sr.fp, sr.desc = s.cache.describe(req.Key)
	return sr, nil
}

// extensionRequest is an extension request as Describe read it: the
// payload and, for session-bind, the parsed and verified binding or why
// it is not one.
type extensionRequest struct {
	*bus.SSHExtensionRequest
	bind    *SessionBind
	bindErr error
}

func readExtension(p json.RawMessage) (*extensionRequest, error) {
	req, err := decodeExtension(p)
	if err != nil {
		return nil, err
	}
	er := &extensionRequest{SSHExtensionRequest: req}
	if req.Type == bus.ExtSessionBind {
		er.bind, er.bindErr = ParseSessionBind(req.Contents)
	}
	return er, nil
}

func (s *Service) describeSign(r *helper.Request, sr *signRequest) *helper.Action {
	sd := sr.sd
	a := &helper.Action{Subject: sr.fp}
	var what, class, scope string
	switch sd.Kind {
	case KindUserAuth:
		dest := clean(sd.User) + "@" + s.destination(r.Shed, sr.AgentConn, sd)
		a.Detail = sr.desc + " " + dest
		what, class = "sign in to "+dest, helper.ClassSSHLogin
	case KindSSHSig:
		ns := clean(sd.Namespace)
		a.Detail = sr.desc + " sshsig:" + ns
		what, class, scope = "sign with sshsig namespace \""+ns+"\"", helper.ClassSSHSign, sd.Namespace
		if sd.Namespace == "git" {
			what = "sign a git commit or tag"
		}
	default:
		a.Detail = sr.desc + " data"
		what, class = "sign data that is neither a login nor an sshsig", helper.ClassSSHSign
	}
	if !allowed(r, sr.fp) {
		a.Detail += " not allowlisted"
		return a
	}
	if d := s.refuseDestination(r, sr.AgentConn, sd); d != nil {
		a.Detail += d.detail()
		return a // refused before anyone is asked
	}
	k := s.cache.lookup(sr.Key)
	if k == nil {
		a.Detail += " not found"
		return a
	}
	a.Class, a.Scope = class, scope
	a.Prompt = r.Shed + " wants to " + what + " with " + sr.desc + " (" + clean(k.Comment) + ")"
	return a
}

// Serve lists, signs or binds.
func (s *Service) Serve(ctx context.Context, r *helper.Request, a *helper.Action) (any, error) {
	switch r.Op {
	case bus.OpList:
		return s.list(r, a)
	case bus.OpSign:
		sr, ok := a.Parsed.(*signRequest)
		if !ok {
			var err error
			if sr, err = s.readSign(r.Payload); err != nil {
				return nil, err
			}
		}
		return s.sign(r, a, sr)
	case bus.OpExtension:
		er, ok := a.Parsed.(*extensionRequest)
		if !ok {
			var err error
			if er, err = readExtension(r.Payload); err != nil {
				return nil, err
			}
		}
		return s.extension(r, a, er)
	case bus.OpAdd, bus.OpRemove, bus.OpRemoveAll, bus.OpLock, bus.OpUnlock:
		return nil, bus.Errorf(bus.CodeNotAllowed, "%s", bus.SSHReadOnly)
	}
	return nil, bus.Errorf(bus.CodeBadRequest, "ssh-agent has no operation %.40q", r.Op)
}

func (s *Service) list(r *helper.Request, a *helper.Action) (any, error) {
	keys, err := s.cache.refresh()
	if err != nil {
		return nil, s.upstream("listing keys", err)
	}
	out := bus.SSHListResponse{Keys: []bus.SSHKey{}}
	for _, k := range keys {
		if allowed(r, k.fp) {
			out.Keys = append(out.Keys, bus.SSHKey{Blob: k.Blob, Comment: k.Comment})
		}
	}
	a.Detail = fmt.Sprintf("%d keys", len(out.Keys))
	return out, nil
}

func (s *Service) sign(r *helper.Request, a *helper.Action, req *signRequest) (any, error) {
	fp := req.fp
	if !allowed(r, fp) {
		return nil, bus.Errorf(bus.CodeNotAllowed, "key %s is not allowed for shed %q; add it to sheds.%s.ssh.keys (or ssh.keys) in the spuff config on your computer", fp, r.Shed, r.Shed)
	}
	k := s.cache.lookup(req.Key)
	if k == nil {
		return nil, bus.Errorf(bus.CodeKeyNotFound, "your computer has no key %s (%s); check `ssh-add -l` there", fp, s.where())
	}
	sd := req.sd
	// Checked again: a bind may have arrived since Describe.
	if d := s.refuseDestination(r, req.AgentConn, sd); d != nil {
		if !strings.Contains(a.Detail, " refused: ") {
			a.Detail += d.detail()
		}
		return nil, bus.Errorf(bus.CodeNotAllowed, "%s", d.message(r.Shed))
	}
	ag, err := s.binds.agentFor(r.Shed, req.AgentConn, sd)
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
		s.cache.invalidate()
		return nil, s.upstream("signing with "+fp, err)
	}
	return bus.SSHSignResponse{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}, nil
}

func (s *Service) extension(r *helper.Request, a *helper.Action, req *extensionRequest) (any, error) {
	if req.Type != bus.ExtSessionBind {
		return nil, bus.Errorf(bus.CodeBadRequest, "agent extension %q is not brokered", clean(req.Type))
	}
	if req.bindErr != nil {
		return nil, bus.Errorf(bus.CodeBadRequest, "%v", req.bindErr)
	}
	st, err := s.binds.bind(r.Shed, req.AgentConn, req.bind)
	if err != nil {
		a.Detail += " refused"
		return nil, err
	}
	if st.sess != nil {
		if _, err := st.sess.Extension(req.Type, req.Contents); err != nil && !errors.Is(err, agent.ErrExtensionUnsupported) {
			s.binds.unbind(r.Shed, req.AgentConn)
			return nil, s.upstream("binding an ssh session", err)
		}
	}
	return bus.SSHExtensionResponse{}, nil
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

// Forget drops a detached shed's bindings and their backend connections.
func (s *Service) Forget(shed string) { s.binds.forget(shed) }

// Close forgets every shed.
func (s *Service) Close() error {
	s.binds.forgetAll()
	return nil
}
