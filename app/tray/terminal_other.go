//go:build !linux && !darwin

package tray

import (
	"errors"
	"os/exec"
)

func terminal([]string) (*exec.Cmd, error) {
	return nil, errors.New("tray: opening a terminal is not supported here; run spuff ssh NAME")
}
