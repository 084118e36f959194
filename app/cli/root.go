// Package cli holds the cobra commands of `spuff`. Every command is a client
// of the control API, except autostart, which writes the start-at-login
// entry; none touches the broker, the keychain or a helper.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
		err = explainUnknown(c, err, args)
		var gf *groupFlagError
		if errors.As(err, &gf) {
			err = gf.explain(args)
		}
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
		if cmd.HasSubCommands() {
			return &groupFlagError{cmd, err}
		}
		return flagHelp(cmd, err)
	})
	for _, sub := range c.Commands() {
		explainMisuse(sub)
	}
}

func flagHelp(cmd *cobra.Command, err error) error {
	return fmt.Errorf("%w; `%s --help` lists the flags", err, cmd.CommandPath())
}

// groupFlagError is an unknown flag refused by a command with subcommands
// before any word: cobra stops at a group when a flag comes before the
// subcommand, and takes the word after a flag it does not know for the
// flag's value. Only the command line says which word that was.
type groupFlagError struct {
	cmd *cobra.Command
	err error
}

func (e *groupFlagError) Error() string { return flagHelp(e.cmd, e.err).Error() }

// explain names, from the words of the command line args, the first word
// after the refused flag: a subcommand, whose flags the user meant, or a
// word that names none, which is the mistake to fix first.
func (e *groupFlagError) explain(args []string) error {
	var ne *pflag.NotExistError
	if !errors.As(e.err, &ne) {
		return flagHelp(e.cmd, e.err)
	}
	token := "--" + ne.GetSpecifiedName()
	if short := ne.GetSpecifiedShortnames(); short != "" {
		token = "-" + short
	}
	at := slices.IndexFunc(args, func(a string) bool { return a == token || strings.HasPrefix(a, token+"=") })
	if at < 0 {
		return flagHelp(e.cmd, e.err)
	}
	for _, word := range args[at+1:] {
		if word == "--" {
			break
		}
		if strings.HasPrefix(word, "-") {
			continue
		}
		if sub := subcommand(e.cmd, word); sub != nil {
			return flagHelp(sub, e.err)
		}
		return unknownCommand(e.cmd, word)
	}
	return flagHelp(e.cmd, e.err)
}

// explainUnknown rewords cobra's refusal of an unknown command under the
// root, which cobra makes before it parses a flag or calls an Args check, so
// that a misspelt command is blamed and not the flags after it. When a flag
// cobra does not know came before a subcommand's name in args, cobra took
// the name for the flag's value: the flag is what to fix.
func explainUnknown(c *cobra.Command, err error, args []string) error {
	var word, parent string
	if c == nil || !c.HasSubCommands() {
		return err
	}
	if n, _ := fmt.Sscanf(err.Error(), "unknown command %q for %q", &word, &parent); n != 2 {
		return err
	}
	for i := 1; i < len(args) && args[i] != word; i++ {
		flag := args[i-1]
		if sub := subcommand(c, args[i]); sub != nil && strings.HasPrefix(flag, "-") && !strings.Contains(flag, "=") && !knows(c, flag) {
			return flagHelp(sub, fmt.Errorf("unknown flag: %s", flag))
		}
	}
	return unknownCommand(c, word)
}

// subcommand is c's subcommand that word names, or nil.
func subcommand(c *cobra.Command, word string) *cobra.Command {
	for _, sub := range c.Commands() {
		if sub.Name() == word || sub.HasAlias(word) {
			return sub
		}
	}
	return nil
}

// knows reports whether flag, a word of the command line, is one of c's.
func knows(c *cobra.Command, flag string) bool {
	if name, ok := strings.CutPrefix(flag, "--"); ok {
		return c.Flags().Lookup(name) != nil
	}
	return len(flag) == 2 && c.Flags().ShorthandLookup(flag[1:]) != nil
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
