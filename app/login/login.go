// Package login makes spuff-app start when the user logs in: a LaunchAgent
// on macOS, an XDG autostart entry on Linux desktops.
package login

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Entry is where the start-at-login file lives and what it says.
type Entry struct {
	Path    string
	Content []byte
}

// Enable writes the start-at-login entry for the spuff-app at exe.
func Enable(exe string) (string, error) {
	if !filepath.IsAbs(exe) {
		return "", fmt.Errorf("login: %q is not an absolute path", exe)
	}
	e, err := entry(exe)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(e.Path), 0o755); err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	tmp := e.Path + ".tmp"
	if err := os.WriteFile(tmp, e.Content, 0o644); err != nil {
		return "", fmt.Errorf("login: writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, e.Path); err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	return e.Path, nil
}

// Disable removes the entry; it is not an error when there is none.
func Disable() error {
	e, err := entry("")
	if err != nil {
		return err
	}
	if err := os.Remove(e.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("login: %w", err)
	}
	return nil
}

// Enabled reports whether the entry exists.
func Enabled() bool {
	e, err := entry("")
	if err != nil {
		return false
	}
	_, err = os.Stat(e.Path)
	return err == nil
}

// Switch turns start-at-login on and off for the spuff-app at Exe.
type Switch struct{ Exe string }

// Enabled reports whether spuff starts at login.
func (s Switch) Enabled() bool { return Enabled() }

// Enable makes spuff-app start at login.
func (s Switch) Enable() error {
	_, err := Enable(s.Exe)
	return err
}

// Disable stops spuff-app starting at login.
func (s Switch) Disable() error { return Disable() }
