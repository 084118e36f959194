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
	if c, err := root.ExecuteContextC(ctx); err != nil {
		err = explainUnknown(c, err)
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
		// Cobra's suggestions come on lines of their own, which Printable
		// would escape onto one; explainUnknown words them instead.
		DisableSuggestions: true,
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
	explainMisuse(root)
	return root
}

// explainMisuse makes every command in the tree answer a wrong argument
// count with its usage line, and an unknown flag with where its flags are
// listed: cobra's own words ("accepts 1 arg(s), received 0") say neither,
// and SilenceUsage keeps it from printing the usage after a real failure.
func explainMisuse(c *cobra.Command) {
	// SuggestionsFor, unlike cobra's own refusal, does not default it to 2.
	c.SuggestionsMinimumDistance = 2
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			switch {
			case err == nil:
				return nil
			case len(args) > 0 && cmd.HasSubCommands():
				// A command with subcommands takes no argument of its own.
				return unknownCommand(cmd, args[0])
			case len(args) > 0 && strings.HasPrefix(err.Error(), "unknown command "):
				// cobra.NoArgs calls any argument an unknown command.
				return fmt.Errorf("unexpected argument %q: `%s` takes none; usage: %s (`%s --help` says more)", args[0], cmd.CommandPath(), cmd.UseLine(), cmd.CommandPath())
			default:
				return fmt.Errorf("%w; usage: %s (`%s --help` says more)", err, cmd.UseLine(), cmd.CommandPath())
			}
		}
	}
	c.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		// A word that named no subcommand left cobra at the group, whose
		// flags then refuse the subcommand's: the word is what is wrong.
		// (pflag holds the words it read before the flag it refused.)
		if words := cmd.Flags().Args(); len(words) > 0 && cmd.HasSubCommands() {
			return unknownCommand(cmd, words[0])
		}
		return fmt.Errorf("%w; `%s --help` lists the flags", err, cmd.CommandPath())
	})
	for _, sub := range c.Commands() {
		explainMisuse(sub)
	}
}

// explainUnknown rewords cobra's refusal of an unknown command under the
// root, which cobra makes before it parses a flag or calls an Args check, so
// that a misspelt command is blamed and not the flags after it.
func explainUnknown(c *cobra.Command, err error) error {
	var word, parent string
	if c == nil || !c.HasSubCommands() {
		return err
	}
	if n, _ := fmt.Sscanf(err.Error(), "unknown command %q for %q", &word, &parent); n != 2 {
		return err
	}
	return unknownCommand(c, word)
}

func unknownCommand(cmd *cobra.Command, word string) error {
	hint := ""
	if near := cmd.SuggestionsFor(word); len(near) > 0 {
		hint = "; did you mean " + strings.Join(near, " or ") + "?"
	}
	return fmt.Errorf("unknown command %q for %q%s; `%s --help` lists the commands", word, cmd.CommandPath(), hint, cmd.CommandPath())
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
