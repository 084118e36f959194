package sshconn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// A made shed is known in known_hosts by an alias ("spuff-NAME"), not by
// its address, as OpenSSH's HostKeyAlias does: a loopback port that a
// later shed reuses then never meets an earlier shed's key.

var aliasMu sync.Mutex

// Pin records key as alias's host key in the known_hosts file at path,
// replacing any key recorded for alias before. A provider that seeds the
// shed's host key lets the host pin it before the first connection.
func Pin(path, alias string, key ssh.PublicKey) error {
	aliasMu.Lock()
	defer aliasMu.Unlock()
	return rewrite(path, alias, alias+" "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
}

// Forget drops alias's lines from the known_hosts file at path.
func Forget(path, alias string) error {
	aliasMu.Lock()
	defer aliasMu.Unlock()
	return rewrite(path, alias, "")
}

// Pinned checks a shed's host key against alias's recorded key, whatever
// address the shed answers on; with none recorded it refuses.
func Pinned(path, alias string) ssh.HostKeyCallback {
	return aliasCheck(path, alias, false)
}

// AcceptNewAlias records alias's key on first use and checks it after.
func AcceptNewAlias(path, alias string) ssh.HostKeyCallback {
	return aliasCheck(path, alias, true)
}

func aliasCheck(path, alias string, acceptNew bool) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		aliasMu.Lock()
		known, err := lookup(path, alias)
		aliasMu.Unlock()
		if err != nil {
			return err
		}
		if len(known) == 0 {
			if acceptNew {
				return Pin(path, alias, key)
			}
			return fmt.Errorf("sshconn: no host key pinned for %s in %s: refusing to connect", alias, path)
		}
		for _, k := range known {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		return fmt.Errorf("sshconn: host key of %s changed (pinned in %s): refusing to connect", alias, path)
	}
}

func lookup(path, alias string) ([]ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sshconn: reading %s: %w", path, err)
	}
	var out []ssh.PublicKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		hosts, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || !names(hosts, alias) {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest))
		if err == nil {
			out = append(out, k)
		}
	}
	return out, sc.Err()
}

func names(hosts, alias string) bool {
	for _, h := range strings.Split(hosts, ",") {
		if h == alias {
			return true
		}
	}
	return false
}

// rewrite replaces alias's lines with line ("" drops them), atomically.
func rewrite(path, alias, line string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sshconn: reading %s: %w", path, err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		hosts, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		if l == "" || names(hosts, alias) {
			continue
		}
		out = append(out, l)
	}
	if line != "" {
		out = append(out, line)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sshconn: %w", err)
	}
	tmp := path + ".spuff-tmp"
	body := strings.Join(out, "\n")
	if body != "" {
		body += "\n"
	}
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return fmt.Errorf("sshconn: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sshconn: writing %s: %w", path, err)
	}
	return nil
}
