// Package sshkeys is the host side of the ssh-agent namespace: it signs for
// sheds with the keys of the developer's computer (their own ssh agent, or
// the unencrypted keys of ~/.ssh), lets each shed see and use only the keys
// its allowlist names, and reads what is being signed (a login to which
// host, an sshsig for which namespace) for approval prompts and the audit.
package sshkeys

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Modes of ssh.mode.
const (
	ModeAuto         = "auto"          // the agent when SSH_AUTH_SOCK answers, else local keys
	ModeAgentForward = "agent-forward" // the host's agent at SSH_AUTH_SOCK
	ModeLocalKeys    = "local-keys"    // unencrypted keys in ~/.ssh
)

// Backend is where signatures come from, chosen by ssh.mode. It is a
// read-only agent: spuff never adds, removes or locks the host's keys.
type Backend struct {
	readOnly
	mode    string // resolved: ModeAgentForward or ModeLocalKeys
	a       agent.ExtendedAgent
	fwd     *forwardAgent
	skipped []SkippedKey
}

var _ agent.ExtendedAgent = (*Backend)(nil)

// NewBackend builds the backend of ssh.mode ("" means auto). sshAuthSock is
// the host's SSH_AUTH_SOCK (may be empty), sshDir its ~/.ssh. Local keys are
// read once, here. An agent that is not running yet is not an error in
// agent-forward mode: it may start after spuff, and each request says so.
func NewBackend(mode, sshAuthSock, sshDir string, log *slog.Logger) (*Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch mode {
	case "", ModeAuto:
		if sshAuthSock == "" {
			log.Info("sshkeys: SSH_AUTH_SOCK is not set; signing with the keys in " + sshDir)
			return newLocalBackend(sshDir, log), nil
		}
		if err := probeAgent(sshAuthSock); err != nil {
			log.Info("sshkeys: your ssh agent does not answer; signing with the keys in "+sshDir, "ssh_auth_sock", sshAuthSock, "err", err)
			return newLocalBackend(sshDir, log), nil
		}
		log.Info("sshkeys: signing with your ssh agent", "ssh_auth_sock", sshAuthSock)
		return newForwardBackend(sshAuthSock), nil
	case ModeAgentForward:
		if sshAuthSock == "" {
			return nil, errors.New("sshkeys: ssh.mode is agent-forward but SSH_AUTH_SOCK is not set; start spuff from a session with an ssh agent, or set ssh.mode to local-keys")
		}
		if err := probeAgent(sshAuthSock); err != nil {
			log.Warn("sshkeys: your ssh agent does not answer yet; signing will fail until it does", "ssh_auth_sock", sshAuthSock, "err", err)
		}
		return newForwardBackend(sshAuthSock), nil
	case ModeLocalKeys:
		return newLocalBackend(sshDir, log), nil
	}
	return nil, fmt.Errorf("sshkeys: unknown ssh.mode %q (want auto, agent-forward or local-keys)", mode)
}

func newForwardBackend(sock string) *Backend {
	f := newForwardAgent(sock)
	return &Backend{mode: ModeAgentForward, a: f, fwd: f}
}

func newLocalBackend(dir string, log *slog.Logger) *Backend {
	lk, skipped := loadLocalKeys(dir)
	for _, s := range skipped {
		log.Warn("sshkeys: skipping a key", "path", s.Path, "reason", s.Reason)
	}
	log.Info("sshkeys: local keys loaded", "dir", dir, "keys", len(lk.keys), "skipped", len(skipped))
	return &Backend{mode: ModeLocalKeys, a: lk, skipped: skipped}
}

// probeAgent checks that an agent answers a list request at sock.
func probeAgent(sock string) error {
	nc, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = agent.NewClient(nc).List()
	return err
}

// Mode is the mode in use: ModeAgentForward or ModeLocalKeys (auto resolved).
func (b *Backend) Mode() string { return b.mode }

// Skipped lists the key files of ~/.ssh that local-keys mode does not serve
// and why (a passphrase, a security key, loose permissions…).
func (b *Backend) Skipped() []SkippedKey { return append([]SkippedKey(nil), b.skipped...) }

// Close releases the connections to the host agent.
func (b *Backend) Close() error {
	if b.fwd != nil {
		return b.fwd.Close()
	}
	return nil
}

// Session opens a backend connection for one bound guest agent connection;
// only the agent-forward mode has such state (agent.ErrExtensionUnsupported
// otherwise).
func (b *Backend) Session() (Session, error) {
	if b.fwd == nil {
		return nil, agent.ErrExtensionUnsupported
	}
	return b.fwd.session()
}

// List returns the backend's keys.
func (b *Backend) List() ([]*agent.Key, error) { return b.a.List() }

// Sign signs with the key's default algorithm.
func (b *Backend) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return b.a.SignWithFlags(key, data, 0)
}

// SignWithFlags signs; flags choose rsa-sha2-256/512 for RSA keys.
func (b *Backend) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	return b.a.SignWithFlags(key, data, flags)
}

// Extension is unsupported on the backend as a whole; session-bind goes
// through Session.
func (b *Backend) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}

// Signers returns a signer for every key of the backend, signing through
// it: this is the host's one SSH identity, with which it logs in to sheds
// (sshconn.Auth) as well as signing for them, so ssh.mode governs both.
// The keys are listed afresh on each call, as an agent's may change.
func (b *Backend) Signers() ([]ssh.Signer, error) {
	keys, err := b.a.List()
	if err != nil {
		return nil, fmt.Errorf("sshkeys: listing the keys of %s: %w", b.mode, err)
	}
	out := make([]ssh.Signer, 0, len(keys))
	for _, k := range keys {
		pub, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			continue // an agent key x/crypto cannot read cannot log in either
		}
		out = append(out, &backendSigner{a: b.a, pub: pub})
	}
	return out, nil
}

// backendSigner signs with one key of the backend, choosing the RSA hash
// through the agent protocol's flags as ssh's own agent client does.
type backendSigner struct {
	a   agent.ExtendedAgent
	pub ssh.PublicKey
}

var _ ssh.AlgorithmSigner = (*backendSigner)(nil)

func (s *backendSigner) PublicKey() ssh.PublicKey { return s.pub }

func (s *backendSigner) Sign(_ io.Reader, data []byte) (*ssh.Signature, error) {
	return s.a.SignWithFlags(s.pub, data, 0)
}

func (s *backendSigner) SignWithAlgorithm(_ io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	var flags agent.SignatureFlags
	switch algorithm {
	case ssh.KeyAlgoRSASHA256:
		flags = agent.SignatureFlagRsaSha256
	case ssh.KeyAlgoRSASHA512:
		flags = agent.SignatureFlagRsaSha512
	case "", s.pub.Type():
	default:
		return nil, fmt.Errorf("sshkeys: a %s key cannot sign as %s", s.pub.Type(), algorithm)
	}
	return s.a.SignWithFlags(s.pub, data, flags)
}

// readOnly refuses every write of agent.Agent: spuff never adds, removes
// or locks the keys of the developer's computer. The host-side agents embed
// it, so the refusal is written once.
type readOnly struct{}

func (readOnly) Add(agent.AddedKey) error   { return errReadOnly }
func (readOnly) Remove(ssh.PublicKey) error { return errReadOnly }
func (readOnly) RemoveAll() error           { return errReadOnly }
func (readOnly) Lock([]byte) error          { return errReadOnly }
func (readOnly) Unlock([]byte) error        { return errReadOnly }
