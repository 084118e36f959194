package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/spuff-dev/spuff/app/login"
)

func autostartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "autostart [on|off]",
		Short: "Start spuff-app when you log in (or stop doing so)",
		Long: `autostart shows whether spuff-app starts when you log in; "on" and "off"
change it. On Linux it writes an XDG autostart entry
(~/.config/autostart/spuff.desktop), on macOS a LaunchAgent
(~/Library/LaunchAgents/dev.spuff.app.plist). The tray menu has the same switch.

"on" registers the spuff-app installed next to this spuff, else the one in PATH.`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"on", "off"},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				if login.Enabled() {
					fmt.Fprintln(out, "spuff-app starts at login (spuff autostart off to stop that)")
				} else {
					fmt.Fprintln(out, "spuff-app does not start at login (spuff autostart on to change that)")
				}
				return nil
			}
			switch args[0] {
			case "on":
				app, err := findApp()
				if err != nil {
					return err
				}
				p, err := login.Enable(app)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "spuff-app (%s) now starts at login: %s\n", app, p)
			case "off":
				if err := login.Disable(); err != nil {
					return err
				}
				fmt.Fprintln(out, "spuff-app no longer starts at login")
			default:
				return fmt.Errorf("autostart: %q is neither on nor off", args[0])
			}
			return nil
		},
	}
}

// findApp locates spuff-app: beside this binary (how releases and the .app
// bundle ship them), else in PATH.
func findApp() (string, error) {
	if self, err := os.Executable(); err == nil {
		if self, err = filepath.EvalSymlinks(self); err == nil {
			p := filepath.Join(filepath.Dir(self), "spuff-app")
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	p, err := exec.LookPath("spuff-app")
	if err == nil {
		if p, err = filepath.Abs(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("autostart: no spuff-app beside spuff or in PATH; install it, then run spuff autostart on again")
}
