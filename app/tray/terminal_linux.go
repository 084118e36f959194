package tray

import (
	"errors"
	"os"
	"os/exec"
)

// terminal runs argv in $TERMINAL, else Debian's x-terminal-emulator; both
// take the command after -e.
func terminal(argv []string) (*exec.Cmd, error) {
	term := os.Getenv("TERMINAL")
	if term == "" {
		term = "x-terminal-emulator"
	}
	p, err := exec.LookPath(term)
	if err != nil {
		return nil, errors.New("tray: no terminal to open: set $TERMINAL or install x-terminal-emulator")
	}
	return exec.Command(p, append([]string{"-e"}, argv...)...), nil
}
