package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control/api"
)

func auditCmd(g *globals) *cobra.Command {
	var (
		f      audit.Filter
		follow bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: every credential request, allowed or not",
		Long: `Audit prints this computer's audit log (its path is in spuff status), oldest
line first: one line per request a shed made, allowed, refused or failed, and one
per lifecycle action spuff took on a shed. Its columns:

  time  shed  namespace  operation  result  approval  detail

The namespace is ssh-agent, aws-credentials or docker-credentials for a
credential; agent for a shed's own pings; provision for up, down, start, stop
and the idle timer; audit for the log's own lines (a reopen after a rotation).
A shed that asks in a namespace spuff does not serve is logged under the name
it sent, and one counted line for a flood of refusals across namespaces shows *.
The result is ok, denied or error; the approval is none, cached, touchid, tray
or cli.

Every field but the time may be a shed's choice, so control characters in them
are printed escaped; --json prints each line as JSON instead.

Examples:
  spuff audit --shed demo --result denied
  spuff audit --ns provision
  spuff audit -f`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			return g.client.Audit(cmd.Context(), f, follow, func(r audit.Record) error {
				if asJSON {
					b, err := json.Marshal(r)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(w, "%s\n", b)
					return err
				}
				// Every field but ts may be a shed's choice.
				p := api.Printable
				_, err := fmt.Fprintf(w, "%s  %-16s %-18s %-16s %-7s %-8s %s\n",
					r.TS.Local().Format("2006-01-02 15:04:05"), p(r.Shed), p(r.NS), p(r.Op), p(r.Result), p(r.Approval), p(r.Detail))
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines as they are written")
	cmd.Flags().StringVar(&f.Shed, "shed", "", "only this shed")
	cmd.Flags().StringVar(&f.NS, "ns", "", "only this namespace (ssh-agent, aws-credentials, docker-credentials, agent, provision, audit)")
	cmd.Flags().StringVar(&f.Result, "result", "", "only this result (ok, denied, error)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON lines")
	return cmd
}
