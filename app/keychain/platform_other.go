//go:build !linux && !(darwin && cgo)

package keychain

import (
	"errors"
	"log/slog"
)

func openPlatform(*slog.Logger) (Store, string, error) {
	return nil, "", errors.New("keychain: this build has no platform secret store")
}
