// Package sshagent is the shed's SSH_AUTH_SOCK: an ssh-agent that holds no
// keys and forwards list, sign and session-bind to the host over the bus.
// It is read-only; a request to add, remove or lock keys is refused (and
// reported to the host, which audits it).
package sshagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/guest/bus"
)

// Caller reaches the host: a *bus.Conn, or the guest daemon's router.
type Caller interface {
	Call(ctx context.Context, ns, op string, payload, out any) error
}

var _ Caller = (*bus.Conn)(nil)

// ErrReadOnly is returned for add, remove, remove-all, lock and unlock.
var ErrReadOnly = errors.New(bus.SSHReadOnly)

// refuseTimeout bounds the report of a refused write: the answer is no
// whatever the host says, so the client is not kept waiting for it.
const refuseTimeout = 2 * time.Second

// Agent serves one client connection of the shed's agent socket. Its
// number travels with signs and bindings so that the host ties a
// session-bind to the signs that follow it on the same connection.
type Agent struct {
	ctx  context.Context
	c    Caller
	conn uint64
	rep  *reporter
}

var _ agent.ExtendedAgent = (*Agent)(nil)

// NewAgent returns the agent for client connection number conn (unique
// per socket; Serve numbers them). Requests end when ctx does.
func NewAgent(ctx context.Context, c Caller, conn uint64, log *slog.Logger) *Agent {
	return &Agent{ctx: ctx, c: c, conn: conn, rep: newReporter(log)}
}

func (a *Agent) call(op string, payload, out any) error {
	err := a.c.Call(a.ctx, bus.NSSSHAgent, op, payload, out)
	a.rep.result(op, err)
	if err != nil {
		return fmt.Errorf("sshagent: %s: %w", op, err)
	}
	return nil
}

// List returns the keys the host lets this shed use.
func (a *Agent) List() ([]*agent.Key, error) {
	var resp bus.SSHListResponse
	if err := a.call(bus.OpList, nil, &resp); err != nil {
		return nil, err
	}
	keys := make([]*agent.Key, 0, len(resp.Keys))
	for _, k := range resp.Keys {
		pub, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			a.rep.log.Debug("sshagent: the host listed a key that does not parse", "err", err)
			continue
		}
		keys = append(keys, &agent.Key{Format: pub.Type(), Blob: k.Blob, Comment: k.Comment})
	}
	return keys, nil
}

// Sign asks the host to sign with the key's default algorithm.
func (a *Agent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return a.SignWithFlags(key, data, 0)
}

// SignWithFlags asks the host to sign; flags (rsa-sha2-256/512) pass through.
func (a *Agent) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	var resp bus.SSHSignResponse
	req := bus.SSHSignRequest{Key: key.Marshal(), Data: data, Flags: uint32(flags), AgentConn: a.conn}
	if err := a.call(bus.OpSign, req, &resp); err != nil {
		return nil, err
	}
	return &ssh.Signature{Format: resp.Format, Blob: resp.Blob, Rest: resp.Rest}, nil
}

// Extension forwards session-bind@openssh.com; every other extension is
// unsupported.
func (a *Agent) Extension(typ string, contents []byte) ([]byte, error) {
	if typ != bus.ExtSessionBind {
		return nil, agent.ErrExtensionUnsupported
	}
	var resp bus.SSHExtensionResponse
	if err := a.call(bus.OpExtension, bus.SSHExtensionRequest{Type: typ, Contents: contents, AgentConn: a.conn}, &resp); err != nil {
		return nil, err
	}
	return resp.Contents, nil
}

// Signers returns signers that sign through the host.
func (a *Agent) Signers() ([]ssh.Signer, error) {
	keys, err := a.List()
	if err != nil {
		return nil, err
	}
	out := make([]ssh.Signer, len(keys))
	for i, k := range keys {
		out[i] = &signer{a: a, pub: k}
	}
	return out, nil
}

type signer struct {
	a   *Agent
	pub ssh.PublicKey
}

func (s *signer) PublicKey() ssh.PublicKey { return s.pub }

func (s *signer) Sign(_ io.Reader, data []byte) (*ssh.Signature, error) {
	return s.a.Sign(s.pub, data)
}

// Add is refused. The host hears of it (public key and comment only) so
// that the attempt is audited.
func (a *Agent) Add(key agent.AddedKey) error {
	var p *bus.SSHKey
	if key.Certificate != nil {
		p = &bus.SSHKey{Blob: key.Certificate.Marshal(), Comment: key.Comment}
	} else if s, err := ssh.NewSignerFromKey(key.PrivateKey); err == nil {
		p = &bus.SSHKey{Blob: s.PublicKey().Marshal(), Comment: key.Comment}
	}
	return a.refuse(bus.OpAdd, p)
}

// Remove is refused.
func (a *Agent) Remove(key ssh.PublicKey) error {
	return a.refuse(bus.OpRemove, &bus.SSHKey{Blob: key.Marshal()})
}

// RemoveAll is refused.
func (a *Agent) RemoveAll() error { return a.refuse(bus.OpRemoveAll, nil) }

// Lock is refused; the passphrase is not sent anywhere.
func (a *Agent) Lock([]byte) error { return a.refuse(bus.OpLock, nil) }

// Unlock is refused.
func (a *Agent) Unlock([]byte) error { return a.refuse(bus.OpUnlock, nil) }

func (a *Agent) refuse(op string, p *bus.SSHKey) error {
	a.rep.log.Warn("sshagent: refused: "+ErrReadOnly.Error(), "op", op)
	ctx, cancel := context.WithTimeout(a.ctx, refuseTimeout)
	defer cancel()
	var payload any
	if p != nil {
		payload = p
	}
	// The host answers NOT_ALLOWED; its answer changes nothing here.
	_ = a.c.Call(ctx, bus.NSSSHAgent, op, payload, nil)
	return ErrReadOnly
}

// reporter logs the host's failures so that the shed's user learns what
// to do without the log filling up: while the host is unreachable, only
// the first failure is logged (and the recovery); a refusal repeated
// within a minute is logged once.
type reporter struct {
	log *slog.Logger

	mu       sync.Mutex
	down     bool
	lastMsg  string
	lastTime time.Time
}

func newReporter(log *slog.Logger) *reporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &reporter{log: log}
}

func (r *reporter) result(op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if r.down {
			r.down = false
			r.log.Info("sshagent: the host answers again")
		}
		return
	}
	var be *bus.Error
	isBus := errors.As(err, &be)
	if !isBus || be.Code == bus.CodeHostUnreachable {
		if r.down {
			r.log.Debug("sshagent: host still unreachable", "op", op, "err", err)
			return
		}
		r.down = true
		msg := fmt.Sprintf("%s (%v)", bus.HostUnreachable, err)
		if isBus {
			msg = be.Message
		}
		r.log.Warn("sshagent: "+msg, "op", op)
		return
	}
	r.down = false
	if be.Message == r.lastMsg && time.Since(r.lastTime) < time.Minute {
		r.log.Debug("sshagent: refused again", "op", op, "code", be.Code)
		return
	}
	r.lastMsg, r.lastTime = be.Message, time.Now()
	r.log.Warn("sshagent: "+be.Message, "op", op, "code", be.Code)
}
