package keychain

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/godbus/dbus/v5"
)

func openPlatform(log *slog.Logger) (Store, string, error) {
	s, err := NewSecretService(SessionBusAddress(), log)
	if err != nil {
		return nil, "", err
	}
	return s, KindSecretService, nil
}

// SessionBusAddress finds the user's D-Bus session bus without starting one:
// $DBUS_SESSION_BUS_ADDRESS, else the systemd user bus socket. "" when there
// is none (a headless box, a container).
func SessionBusAddress() string {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return a
	}
	dirs := []string{filepath.Join("/run/user", strconv.Itoa(os.Getuid()))}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "bus")
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			return fmt.Sprintf("unix:path=%s", dbus.EscapeBusAddressValue(p))
		}
	}
	return ""
}
