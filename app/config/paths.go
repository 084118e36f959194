package config

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

// homeDir is the user's home directory, from $HOME or the user database.
func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return h
	}
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		return u.HomeDir
	}
	return "/"
}

// ExpandHome replaces a leading "~" or "~/" with the user's home directory.
// Other paths ("~bob/x" included) are returned as they are.
func ExpandHome(p string) string {
	if p == "~" {
		return homeDir()
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(homeDir(), rest)
	}
	return p
}

// Home is spuff's own directory: $SPUFF_HOME, or ~/.spuff.
func Home() string {
	if h := os.Getenv("SPUFF_HOME"); h != "" {
		return filepath.Clean(ExpandHome(h))
	}
	return filepath.Join(homeDir(), ".spuff")
}

// ConfigPath is the config file, Home/config.yaml.
func ConfigPath() string { return filepath.Join(Home(), "config.yaml") }

// StatePath is the provisioning state database, Home/state.db.
func StatePath() string { return filepath.Join(Home(), "state.db") }

// RunDir holds runtime files such as the control socket, Home/run.
func RunDir() string { return filepath.Join(Home(), "run") }

// SocketPath is the control API's unix socket, Home/run/spuff.sock.
func SocketPath() string { return filepath.Join(RunDir(), "spuff.sock") }

// DefaultAuditPath is where the audit log goes unless audit.path says
// otherwise: $XDG_DATA_HOME/shed/extensions-audit.log, with the XDG default
// ~/.local/share when the variable is unset or not absolute (as the XDG
// base directory spec asks).
func DefaultAuditPath() string {
	data := os.Getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(data) {
		data = filepath.Join(homeDir(), ".local", "share")
	}
	return filepath.Join(data, "shed", "extensions-audit.log")
}
