//go:build !linux && !windows && !(darwin && cgo)

package tray

import (
	"context"
	"errors"
	"log/slog"
)

// Run reports that this build has no tray (darwin needs cgo for it).
func Run(ctx context.Context, c Client, auto Autostart, log *slog.Logger) error {
	return errors.New("tray: this build has no menu-bar support; run spuff-app --headless")
}
