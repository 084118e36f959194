// Package cli holds the cobra commands of `spuff`. Every command is a client
// of the control API, except autostart, which writes the start-at-login
// entry; none touches the broker, the keychain or a helper.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spuff-dev/spuff/app/control/api"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control"
)

// Version is set by the build.
var Version = "dev"

type globals struct {
	socket string
	client *control.Client
}

// Main runs the spuff command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		// An error may quote the broker, which may quote a shed. This
		// package's own errors already begin with the command's name.
		fmt.Fprintln(stderr, "spuff:", api.Printable(strings.TrimPrefix(err.Error(), "spuff: ")))
		return 1
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "spuff",
		Short: "Drive spuff: sheds with no credentials inside, brokered by this computer",
		Long: `spuff gives development machines ("sheds") SSH signing, AWS session tokens and
docker registry logins without ever copying a credential into them. The broker
(spuff-app, in the menu bar or --headless) signs and mints on this computer and
writes an audit line for every request. This command talks to that broker.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			if g.socket == "" {
				g.socket = config.SocketPath()
			}
			g.client = control.NewClient(g.socket)
		},
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "control socket of spuff-app (default ~/.spuff/run/spuff.sock; SPUFF_HOME moves it)")
	root.AddCommand(upCmd(g), downCmd(g), startCmd(g), stopCmd(g), sshCmd(g), sshConfigCmd(g))
	root.AddCommand(statusCmd(g), listCmd(g), attachCmd(g), detachCmd(g), auditCmd(g),
		pendingCmd(g), decideCmd(g, true), decideCmd(g, false), approvalsCmd(g), lockCmd(g), doctorCmd(g), autostartCmd())
	return root
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}
