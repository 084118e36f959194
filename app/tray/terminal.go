package tray

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
)

// shedName is what a shed's name may be (config.ValidShedName). A name
// reaches a terminal's command line, and an orphan's name is the
// provider's, so anything else is refused rather than quoted. At most 63
// characters, checked apart: a bounded repetition compiles to one copy per
// repeat, held for the process's life.
var shedName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// openTerminal opens the platform's terminal running `spuff ssh NAME`.
func openTerminal(_ context.Context, name string) error {
	if len(name) > 63 || !shedName.MatchString(name) {
		return fmt.Errorf("tray: %q is not a shed name", name)
	}
	cmd, err := terminal([]string{spuffPath(), "ssh", name})
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("tray: opening a terminal: %w", err)
	}
	go cmd.Wait() //nolint:errcheck // the terminal outlives the click; this reaps it
	return nil
}

// spuffPath is the spuff CLI beside this executable (as installed and in
// the macOS bundle), else the one on PATH.
func spuffPath() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "spuff")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("spuff"); err == nil {
		return p
	}
	return "spuff"
}
