// Package buskey holds the host's bus key: an ed25519 key that only the
// host has, whose public half a shed's authorized_keys forces to run
// `spuff-guest bus-stdio`. Its private half lives in the platform
// keychain, or, where there is none, in ~/.spuff/bus_ed25519 (0600).
package buskey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/keychain"
)

// Item is the key's name in the keychain.
const Item = "bus-ed25519"

// FileName is the key's file under spuff's home when no keychain answers.
const FileName = "bus_ed25519"

// Key is the loaded bus key.
type Key struct {
	Signer ssh.Signer
	// Where says where the private half is kept, for `spuff doctor`.
	Where string
}

// Public is the authorized_keys form of the public half.
func (k Key) Public() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Signer.PublicKey()))) + " spuff-bus"
}

// Load returns the bus key, making it on first use. With a platform store
// (kind is not keychain.KindFile) the key lives there; otherwise in
// home/bus_ed25519.
func Load(store keychain.Store, kind, home string) (Key, error) {
	if store != nil && kind != keychain.KindFile {
		pemBytes, err := store.Get(Item)
		if errors.Is(err, keychain.ErrNotFound) {
			if pemBytes, err = generate(); err == nil {
				err = store.Set(Item, pemBytes)
			}
		}
		if err != nil {
			return Key{}, fmt.Errorf("buskey: the %s store: %w", kind, err)
		}
		return parse(pemBytes, kind)
	}
	path := filepath.Join(home, FileName)
	pemBytes, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if pemBytes, err = generate(); err != nil {
			return Key{}, err
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return Key{}, fmt.Errorf("buskey: %w", err)
		}
		// O_EXCL: two spuff-apps starting at once must not make two keys.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			return Load(nil, kind, home)
		}
		if err != nil {
			return Key{}, fmt.Errorf("buskey: %w", err)
		}
		_, werr := f.Write(pemBytes)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			os.Remove(path)
			return Key{}, fmt.Errorf("buskey: writing %s: %w", path, err)
		}
	} else if err != nil {
		return Key{}, fmt.Errorf("buskey: reading %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("buskey: %s is readable by others (%v); chmod 600 it", path, fi.Mode().Perm())
	}
	return parse(pemBytes, path)
}

func generate() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("buskey: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "spuff-bus")
	if err != nil {
		return nil, fmt.Errorf("buskey: %w", err)
	}
	return pem.EncodeToMemory(blk), nil
}

func parse(pemBytes []byte, where string) (Key, error) {
	s, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		return Key{}, fmt.Errorf("buskey: the key in %s does not parse: %w", where, err)
	}
	if s.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return Key{}, fmt.Errorf("buskey: the key in %s is %s, not ed25519", where, s.PublicKey().Type())
	}
	return Key{Signer: s, Where: where}, nil
}
