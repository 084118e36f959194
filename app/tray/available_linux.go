package tray

import (
	"errors"
	"os"
)

// available checks for the session bus the StatusNotifier tray talks over.
func available() error {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		return errors.New("tray: no desktop session bus (DBUS_SESSION_BUS_ADDRESS is unset)")
	}
	return nil
}
