//go:build darwin && cgo

package keychain

import (
	"errors"
	"fmt"
	"log/slog"

	gokeychain "github.com/keybase/go-keychain"
)

func openPlatform(*slog.Logger) (Store, string, error) {
	s := NewKeychain()
	// A probe read: a keychain that cannot be searched (no login keychain,
	// a sandbox without access) sends us to the file fallback now rather
	// than failing every later write.
	if _, err := s.Get("probe"); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, "", err
	}
	return s, KindKeychain, nil
}

// Keychain is a Store in the user's macOS keychain: generic passwords with
// service dev.spuff and account KEY, readable only while the Mac is unlocked
// and never synchronised to other devices.
type Keychain struct{}

var _ Store = Keychain{}

// NewKeychain returns the macOS keychain store.
func NewKeychain() Keychain { return Keychain{} }

func query(key string) gokeychain.Item {
	q := gokeychain.NewItem()
	q.SetSecClass(gokeychain.SecClassGenericPassword)
	q.SetService(Service)
	q.SetAccount(key)
	return q
}

func (Keychain) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	q := query(key)
	q.SetMatchLimit(gokeychain.MatchLimitOne)
	q.SetReturnData(true)
	res, err := gokeychain.QueryItem(q)
	if err != nil {
		return nil, fmt.Errorf("keychain: reading %s: %w", key, err)
	}
	if len(res) == 0 {
		return nil, ErrNotFound
	}
	return res[0].Data, nil
}

func (Keychain) Set(key string, val []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	item := query(key)
	item.SetLabel("spuff: " + key)
	item.SetData(val)
	item.SetAccessible(gokeychain.AccessibleWhenUnlockedThisDeviceOnly)
	item.SetSynchronizable(gokeychain.SynchronizableNo)
	err := gokeychain.AddItem(item)
	if errors.Is(err, gokeychain.ErrorDuplicateItem) {
		upd := gokeychain.NewItem()
		upd.SetData(val)
		upd.SetAccessible(gokeychain.AccessibleWhenUnlockedThisDeviceOnly)
		err = gokeychain.UpdateItem(query(key), upd)
	}
	if err != nil {
		return fmt.Errorf("keychain: writing %s: %w", key, err)
	}
	return nil
}

func (Keychain) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := gokeychain.DeleteItem(query(key))
	if err != nil && !errors.Is(err, gokeychain.ErrorItemNotFound) {
		return fmt.Errorf("keychain: deleting %s: %w", key, err)
	}
	return nil
}
