package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spuff-dev/spuff/app/control"
	"github.com/spuff-dev/spuff/app/control/api"
)

// seeing adds to an id the broker refused the command that lists the ids
// there are; spuff-app not running needs no list.
func seeing(err error, list string) error {
	if errors.Is(err, control.ErrNotRunning) {
		return err
	}
	return fmt.Errorf("%w (see `%s`)", err, list)
}

func pendingCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "List requests waiting for your approval",
		Long: `Pending lists the requests that wait for a human: who asks (the shed), for what
(the operation, key, role or registry) and until when. Answer with
'spuff approve ID' or 'spuff deny ID'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			items, err := g.client.Pending(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), items)
			}
			if len(items) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing is waiting for approval")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSHED\tASKS\tWAITING\tEXPIRES IN")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", api.Printable(it.ID), api.Printable(it.Shed), api.Printable(it.Prompt), it.Waiting, time.Until(it.Expires).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func decideCmd(g *globals, allow bool) *cobra.Command {
	use, short, done := "deny ID", "Refuse a pending request", "denied"
	if allow {
		use, short, done = "approve ID", "Allow a pending request (and, per policy, the ones like it for a while)", "approved"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client.Decide(cmd.Context(), args[0], allow, "cli"); err != nil {
				return seeing(err, "spuff pending")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", done, args[0])
			return nil
		},
	}
}

func approvalsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List remembered approvals (grants); `approvals revoke ID` drops one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			grants, err := g.client.Grants(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), grants)
			}
			if len(grants) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no approvals are remembered")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSHED\tCLASS\tSCOPE\tSUBJECT\tPOLICY\tBY\tEXPIRES IN")
			p := api.Printable
			for _, gr := range grants {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p(gr.ID), p(gr.Shed), p(gr.Class), p(gr.Scope), p(gr.Subject), p(gr.Policy), p(gr.Method), time.Until(gr.Expires).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke ID",
		Short: "Forget one approval; the next matching request asks again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client.Revoke(cmd.Context(), args[0]); err != nil {
				return seeing(err, "spuff approvals")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	})
	return cmd
}

func lockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "lock",
		Short: "Revoke every approval and deny everything pending (for a shed you no longer trust)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := g.client.Lock(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "locked: %d approvals revoked, everything pending denied\n", n)
			return nil
		},
	}
}
