package sshkeys

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// KnownHosts names host keys after the host's known_hosts files, so that a
// login is audited as git@github.com rather than as a host key fingerprint.
// Hashed entries name nothing (that is what hashing is for), nor do
// wildcard patterns or @cert-authority and @revoked lines. The files are
// read again when they change, at most once per recheck interval.
type KnownHosts struct {
	paths   []string
	recheck time.Duration

	mu      sync.Mutex
	checked time.Time
	stamps  []stamp
	names   map[string][]string // host key wire blob → names, in file order
}

type stamp struct {
	mod  time.Time
	size int64
}

const maxKnownHostsSize = 16 << 20

// DefaultKnownHosts lists the known_hosts files of an ~/.ssh directory.
func DefaultKnownHosts(sshDir string) []string {
	return []string{filepath.Join(sshDir, "known_hosts"), filepath.Join(sshDir, "known_hosts2")}
}

// NewKnownHosts reads host names from the given files; missing ones are
// fine (they may appear later).
func NewKnownHosts(paths ...string) *KnownHosts {
	return &KnownHosts{paths: slices.Clone(paths), recheck: 2 * time.Second}
}

// Names returns the names known_hosts gives hostKey (a wire blob), or nil.
func (k *KnownHosts) Names(hostKey []byte) []string {
	if k == nil || len(k.paths) == 0 {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); k.names == nil || now.Sub(k.checked) >= k.recheck {
		k.checked = now
		if st := k.stat(); k.names == nil || !slices.Equal(st, k.stamps) {
			k.stamps = st
			k.names = k.load()
		}
	}
	return k.names[string(hostKey)]
}

func (k *KnownHosts) stat() []stamp {
	out := make([]stamp, len(k.paths))
	for i, p := range k.paths {
		if fi, err := os.Stat(p); err == nil {
			out[i] = stamp{fi.ModTime(), fi.Size()}
		}
	}
	return out
}

func (k *KnownHosts) load() map[string][]string {
	names := make(map[string][]string)
	for _, p := range k.paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) > maxKnownHostsSize {
			continue
		}
		addKnownHosts(names, b)
	}
	return names
}

// addKnownHosts adds the plain names of each line of a known_hosts file. A
// line that does not parse is skipped rather than ending the file.
func addKnownHosts(names map[string][]string, file []byte) {
	for line := range bytes.Lines(file) {
		marker, hosts, key, _, _, err := ssh.ParseKnownHosts(line)
		if err != nil || marker != "" || key == nil {
			continue
		}
		blob := string(key.Marshal())
		for _, h := range hosts {
			if h == "" || strings.HasPrefix(h, "|") || strings.ContainsAny(h, "*?!") {
				continue
			}
			if !slices.Contains(names[blob], h) {
				names[blob] = append(names[blob], h)
			}
		}
	}
}
