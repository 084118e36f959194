package keychain

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File keeps one 0600 file per key in a 0700 directory: the fallback where
// no platform store answers (a headless Linux box without a Secret Service).
// Writes go to a temporary file renamed over the old one, so a crash leaves
// the old value or the new one, never half of either.
type File struct {
	dir string
}

var _ Store = (*File)(nil)

// NewFile opens (creating) the store directory and tightens it to 0700.
func NewFile(dir string) (*File, error) {
	if dir == "" {
		return nil, errors.New("keychain: no directory for the file store")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keychain: creating %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keychain: securing %s: %w", dir, err)
	}
	return &File{dir: dir}, nil
}

// Dir is where the files live.
func (s *File) Dir() string { return s.dir }

func (s *File) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	p := filepath.Join(s.dir, key)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("keychain: reading %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keychain: reading %s: %w", p, err)
	}
	// Like ssh with private keys: a secret others can read is not trusted,
	// since someone else may have put it there too.
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keychain: %s is accessible to other users (mode %04o); chmod 600 it", p, fi.Mode().Perm())
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("keychain: reading %s: %w", p, err)
	}
	return b, nil
}

func (s *File) Set(key string, val []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	p := filepath.Join(s.dir, key)
	tmp, err := os.CreateTemp(s.dir, ".tmp-*") // CreateTemp makes it 0600
	if err != nil {
		return fmt.Errorf("keychain: writing %s: %w", p, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(val); err != nil {
		return fmt.Errorf("keychain: writing %s: %w", p, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("keychain: writing %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keychain: writing %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("keychain: writing %s: %w", p, err)
	}
	ok = true
	return s.syncDir()
}

func (s *File) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	p := filepath.Join(s.dir, key)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keychain: deleting %s: %w", p, err)
	}
	return s.syncDir()
}

// syncDir makes a rename or removal durable, so a revoked grant does not
// come back after a power cut.
func (s *File) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("keychain: syncing %s: %w", s.dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keychain: syncing %s: %w", s.dir, err)
	}
	return nil
}
