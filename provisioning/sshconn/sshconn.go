// Package sshconn holds what the host needs to reach a shed over SSH: the
// host's own credentials as ssh.AuthMethods, and a known_hosts check that
// accepts a shed's first key and refuses any change after it.
package sshconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// AcceptNew returns a host key check backed by the known_hosts file at
// path: a known host must present the recorded key; an unknown one is
// recorded (OpenSSH's StrictHostKeyChecking=accept-new).
func AcceptNew(path string) ssh.HostKeyCallback {
	var mu sync.Mutex
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		mu.Lock()
		defer mu.Unlock()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("sshconn: creating %s: %w", filepath.Dir(path), err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return fmt.Errorf("sshconn: opening %s: %w", path, err)
		}
		f.Close()
		check, err := knownhosts.New(path)
		if err != nil {
			return fmt.Errorf("sshconn: reading %s: %w", path, err)
		}
		err = check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
			af, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("sshconn: recording host key: %w", err)
			}
			defer af.Close()
			if _, err := af.WriteString(line + "\n"); err != nil {
				return fmt.Errorf("sshconn: recording host key: %w", err)
			}
			return nil
		}
		if errors.As(err, &ke) {
			return fmt.Errorf("sshconn: host key of %s changed (recorded in %s line %d): refusing to connect; if the shed was rebuilt, remove that line", hostname, path, ke.Want[0].Line)
		}
		return err
	}
}

// Auth returns the host's SSH credentials: the keys of its agent
// (SSH_AUTH_SOCK) and unencrypted private keys at keyPaths. Unreadable or
// passphrase-protected keys are skipped.
func Auth(sshAuthSock string, keyPaths []string) []ssh.AuthMethod {
	var signers []ssh.Signer
	for _, p := range keyPaths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			continue
		}
		signers = append(signers, s)
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if sshAuthSock != "" {
		a := &sharedAgent{path: sshAuthSock}
		methods = append(methods, ssh.PublicKeysCallback(a.signers))
	}
	return methods
}

// sharedAgent keeps one connection to the host's agent for every handshake,
// redialling when the agent has gone away.
type sharedAgent struct {
	path string
	mu   sync.Mutex
	conn net.Conn
	cl   agent.ExtendedAgent
}

func (a *sharedAgent) signers() ([]ssh.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cl != nil {
		if s, err := a.cl.Signers(); err == nil {
			return s, nil
		}
		a.conn.Close()
		a.cl = nil
	}
	c, err := net.Dial("unix", a.path)
	if err != nil {
		return nil, fmt.Errorf("sshconn: reaching the ssh agent: %w", err)
	}
	a.conn, a.cl = c, agent.NewClient(c)
	return a.cl.Signers()
}

// DefaultKeyPaths lists the usual private keys under dir (~/.ssh).
func DefaultKeyPaths(dir string) []string {
	var out []string
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		out = append(out, filepath.Join(dir, n))
	}
	return out
}
