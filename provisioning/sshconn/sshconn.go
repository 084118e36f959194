// Package sshconn holds what the host needs to reach a shed over SSH: its
// one SSH identity as ssh.AuthMethods, and a known_hosts check that accepts
// a shed's first key and refuses any change after it.
package sshconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
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

// Identity is the host's one SSH identity: the keys ssh.mode chose
// (*sshkeys.Backend), which sign for sheds and log the host in to them.
type Identity interface {
	Signers() ([]ssh.Signer, error)
}

// Auth logs in as id. Its keys are asked for at each handshake, so an agent
// started (or a key added to it) after spuff-app is used from then on.
func Auth(id Identity) []ssh.AuthMethod {
	return []ssh.AuthMethod{ssh.PublicKeysCallback(id.Signers)}
}
