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
		Args:  cobra.NoArgs,
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
	cmd.Flags().StringVar(&f.NS, "ns", "", "only this namespace (ssh-agent, aws-credentials, docker-credentials, agent)")
	cmd.Flags().StringVar(&f.Result, "result", "", "only this result (ok, denied, error)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON lines")
	return cmd
}
