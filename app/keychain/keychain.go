// Package keychain keeps spuff's small host secrets (approval grants, bus
// keys, tokens) in the platform's secret store: the macOS keychain, the
// Secret Service on Linux, or a 0600 file where neither answers.
package keychain

import (
	"errors"
	"fmt"
	"log/slog"
)

// Service names spuff's items in every store, so they never mix with another
// program's secrets.
const Service = "dev.spuff"

// Kinds of store Open may return, for logs and `spuff doctor`.
const (
	KindKeychain      = "keychain"       // macOS keychain
	KindSecretService = "secret-service" // org.freedesktop.secrets over D-Bus
	KindFile          = "file"           // 0600 files in a 0700 directory
	KindMemory        = "memory"         // tests
)

// ErrNotFound is returned by Get when nothing is stored under the key.
var ErrNotFound = errors.New("keychain: not found")

// Store is a small key/value secret store. Keys are short names chosen by
// spuff ([A-Za-z0-9._-], not starting with a dot). Delete of a missing key
// succeeds, so revoking twice is harmless.
type Store interface {
	Get(key string) ([]byte, error)
	Set(key string, val []byte) error
	Delete(key string) error
}

// Open returns the platform's store, or a file store in dir when the platform
// has none that answers. kind is one of the Kind constants.
func Open(dir string, log *slog.Logger) (Store, string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, kind, err := openPlatform(log)
	if err == nil {
		return s, kind, nil
	}
	log.Info("keychain: no platform secret store, keeping secrets in files", "dir", dir, "reason", err)
	f, err := NewFile(dir)
	if err != nil {
		return nil, "", err
	}
	return f, KindFile, nil
}

// checkKey keeps keys safe as file names and store attributes.
func checkKey(key string) error {
	if key == "" || len(key) > 128 || key[0] == '.' {
		return fmt.Errorf("keychain: bad key %q", key)
	}
	for _, c := range key {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("keychain: bad key %q", key)
		}
	}
	return nil
}
