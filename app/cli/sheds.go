package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spuff-dev/spuff/app/control/api"
)

func statusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the broker runs, its files, and each shed's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.client.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printStatus writes what `spuff status` says of st: the broker, its files
// and their health, then each attached shed.
func printStatus(w io.Writer, st *api.Status) {
	fmt.Fprintf(w, "spuff-app %s running (pid %d, up %s)\n", api.Printable(st.Version), st.PID, time.Since(st.Started).Round(time.Second))
	fmt.Fprintf(w, "config:    %s\naudit log: %s\n", st.Config, st.AuditLog)
	if a := st.Audit; a.Failing() {
		fmt.Fprintf(w, "audit:     FAILING since %s, so every request is denied: %s\n", a.Since.Local().Format(time.TimeOnly), api.Printable(a.Error))
	} else if a != nil {
		fmt.Fprintf(w, "audit:     healthy (durability %s)\n", a.Durability)
	}
	if f := st.Fence; f.Failing() {
		fmt.Fprintf(w, "fence:     FAILING since %s, so requests dated ahead of this computer's clock are refused: %s\n", f.Since.Local().Format(time.TimeOnly), api.Printable(f.Error))
	}
	if st.Keychain != "" {
		fmt.Fprintf(w, "keychain:  %s\n", st.Keychain)
	}
	if st.Approvals != nil {
		fmt.Fprintf(w, "approvals: %d pending, %d grants\n", st.Approvals.Pending, st.Approvals.Grants)
	}
	if len(st.Sheds) == 0 {
		fmt.Fprintln(w, "sheds:     none attached (spuff attach NAME URL)")
		return
	}
	fmt.Fprintln(w, "sheds:")
	for _, s := range st.Sheds {
		fmt.Fprintf(w, "  %-20s %-13s %d requests, %d denied, %d errors\n", api.Printable(s.Name), api.Printable(s.State), s.Requests, s.Denied, s.Errors)
	}
}

func listCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List attached sheds, then the sheds spuff made (provider, state, address, age)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			sheds, err := g.client.Sheds(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				made, err := g.client.Made(cmd.Context())
				if err != nil {
					return err
				}
				for _, n := range made.Notes {
					fmt.Fprintln(cmd.ErrOrStderr(), "note:", api.Printable(n))
				}
				return printJSON(cmd.OutOrStdout(), mergeList(sheds, made.Sheds))
			}
			if len(sheds) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no sheds attached; attach one with: spuff attach NAME URL, or make one with: spuff up NAME")
				return printMade(cmd.Context(), g, cmd.OutOrStdout())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tSINCE\tURL\tGUEST\tLAST ERROR")
			for _, s := range sheds {
				p := api.Printable
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p(s.Name), p(s.State), ago(s.Since), p(s.URL), p(s.GuestVersion), p(s.LastError))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printMade(cmd.Context(), g, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func attachCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "attach NAME URL",
		Short: "Let the broker dial an existing shed",
		Long: `Attach tells the broker to dial a shed's bus and keep it connected,
reconnecting with backoff. The shed is known by NAME from then on: its
requests are checked and audited under that name, whatever they claim.

URL is one of:
  unix:///path/to/bus.sock   a guest on this machine (tests, local sheds)
  ssh://user@host[:port]     a cloud VM; the key's forced command runs spuff-guest bus-stdio
  vsock://CID:PORT           a local VM`,
		Example: "  spuff attach my-service ssh://dev@203.0.113.7\n  spuff attach local unix:///run/spuff/bus.sock",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client.Attach(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "attached %s (%s); `spuff list` shows when it is connected\n", args[0], args[1])
			return nil
		},
	}
}

func detachCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "detach NAME",
		Short: "Disconnect a shed; its requests fail until it is attached again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client.Detach(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "detached %s\n", args[0])
			return nil
		},
	}
}
