package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spuff-dev/spuff/app/control/api"
)

// follow prints the provisioning steps of shed while call runs op on it:
// the event stream is open before call starts, so no step is missed.
func follow(ctx context.Context, g *globals, w io.Writer, op, shed string, call func() error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opened, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_ = g.client.Events(ctx, func(e api.Event) error {
			switch {
			case e.Kind == api.EventOpen:
				close(opened)
			case e.Kind == api.EventProvision && e.Shed == shed && e.Provision != nil:
				line := fmt.Sprintf("[%6.1fs] %-13s %s", e.Provision.Elapsed.Seconds(), api.Printable(e.State), api.Printable(e.Provision.Step))
				if e.Provision.Error != "" {
					line += ": " + api.Printable(e.Provision.Error)
				}
				fmt.Fprintln(w, line)
			}
			return nil
		})
	}()
	select {
	case <-opened:
	case <-done: // no stream; the call still says how it went
	case <-time.After(5 * time.Second):
	}
	err := call()
	if err != nil && ctx.Err() != nil {
		return interrupted(op, shed) // the steps that follow are spuff-app's to take
	}
	// Let the last steps arrive before the result line.
	time.Sleep(100 * time.Millisecond)
	return err
}

// interrupted is what an interrupted (Ctrl-C) lifecycle command says: its
// action is spuff-app's, which carries it on to the end so that no row is
// left half-way, so the developer learns where it goes on and how to stop
// it, not that a context was canceled.
func interrupted(op, name string) error {
	name = api.Printable(name)
	if op == "down" {
		return fmt.Errorf("interrupted; spuff-app goes on removing %s (`spuff list` shows it)", name)
	}
	return fmt.Errorf("interrupted; the %s of %s goes on in spuff-app (`spuff list` shows its state); `spuff down %s` stops it and removes the shed", op, name, name)
}

func upCmd(g *globals) *cobra.Command {
	var provider string
	var noConnect bool
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "up [NAME]",
		Short: "Make a shed (or start a stopped one), bootstrap it and attach it",
		Long: `Up makes a shed called NAME ("shed" if none is given) with the provider of
--provider, else sheds.NAME.provider, else provision.provider (qemu, a local VM).
It prints each step: the machine, its boot, cloud-init, the guest's install and
the bus. When it ends, the shed is ready: ` + "`spuff ssh NAME`" + ` logs in, and so does
` + "`ssh spuff-NAME`" + ` once ~/.ssh/config includes ~/.spuff/ssh_config. Up of a stopped
shed starts it; up of a name that has a shed is refused.

A local shed's first up builds its base image (Debian 12) once, which takes a
few minutes; it is kept under ~/.cache/spuff/images for every later up.

A cloud shed needs its provider's API token in spuff-app's environment:
DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN) or HCLOUD_TOKEN. spuff never
reads a token from its config and never puts one in a shed. A cloud shed bills
until ` + "`spuff down NAME`" + `, or until it has been idle for its idle timeout.

The idle timeout (--idle-timeout, else sheds.NAME.idle_timeout, else
provision.idle_timeout, 2h; 0 is never) counts from the shed's last login
activity or credential request. A notice comes idle_notice (10m) before; then
a cloud shed is destroyed and a local one stopped.

The up runs in spuff-app: interrupting this command leaves it going, and
` + "`spuff down NAME`" + ` stops it and removes what it made.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "shed"
			if len(args) == 1 {
				name = args[0]
			}
			w := cmd.OutOrStdout()
			req := api.UpRequest{Name: name, Provider: provider, NoConnect: noConnect}
			if cmd.Flags().Changed("idle-timeout") {
				if idle < 0 {
					return fmt.Errorf("spuff: --idle-timeout %s: 0 (never) or positive", idle)
				}
				req.IdleTimeoutSeconds = new(int64(idle / time.Second))
			}
			var m *api.MadeShed
			err := follow(cmd.Context(), g, w, "up", name, func() (err error) {
				m, err = g.client.Up(cmd.Context(), req)
				return err
			})
			defer refreshSSHConfig(cmd.Context(), g, w, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s is %s at %s (%s); spuff ssh %s\n", api.Printable(m.Name), api.Printable(m.State), api.Printable(m.Addr), api.Printable(m.Provider), api.Printable(m.Name))
			return nil
		},
	}
	cmd.Flags().StringVar(&provider, "provider", "", "qemu, digitalocean or hetzner (default: sheds.NAME.provider, else provision.provider)")
	cmd.Flags().BoolVar(&noConnect, "no-connect", false, "do not attach the shed's bus")
	cmd.Flags().DurationVar(&idle, "idle-timeout", 0, "end this shed when idle this long, 0 = never (default: sheds.NAME.idle_timeout, provision.idle_timeout)")
	return cmd
}

func downCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "down NAME",
		Short: "Destroy a shed spuff made",
		Long: `Down detaches the shed, deletes its machine and everything spuff made for it at
the provider (a cloud shed's login key and firewall, a local shed's disk), and
forgets it. A down stops an up, start or stop still under way on the shed
first. If the provider cannot delete the machine, the shed is kept and marked
failed, so that nothing is left billing unseen; --force forgets it anyway (then
delete the machine in the provider's console).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			defer refreshSSHConfig(cmd.Context(), g, w, cmd.ErrOrStderr())
			if err := follow(cmd.Context(), g, w, "down", args[0], func() error { return g.client.Down(cmd.Context(), args[0], force) }); err != nil {
				return err
			}
			fmt.Fprintf(w, "%s is gone\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "forget the shed even when its provider cannot delete it")
	return cmd
}

func startCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start NAME",
		Short: "Boot a stopped local shed and attach it",
		Long: `Start boots a local shed that ` + "`spuff stop`" + `, its idle timeout or a restart of this
computer stopped, with the disk it had, and attaches its bus again. A cloud shed
is never stopped (a stopped cloud VM still bills): its idle timeout destroys it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			defer refreshSSHConfig(cmd.Context(), g, w, cmd.ErrOrStderr())
			return follow(cmd.Context(), g, w, "start", args[0], func() error {
				_, err := g.client.Start(cmd.Context(), args[0])
				return err
			})
		},
	}
}

func stopCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Power a local shed off, keeping its disk",
		Long: `Stop asks a local shed to power off, and ends its VM if it has not after a
while. Its disk stays; ` + "`spuff start NAME`" + ` (or ` + "`spuff up NAME`" + `) boots it again.
Cloud sheds cannot be stopped: ` + "`spuff down NAME`" + ` removes one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			defer refreshSSHConfig(cmd.Context(), g, w, cmd.ErrOrStderr())
			return follow(cmd.Context(), g, w, "stop", args[0], func() error { return g.client.Stop(cmd.Context(), args[0]) })
		},
	}
}

func sshCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh NAME [-- CMD...]",
		Short: "Log in to a shed spuff made with OpenSSH, its host key checked under its alias",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The row has the address: no provider need be asked.
			l, err := g.client.MadeRows(cmd.Context())
			if err != nil {
				return err
			}
			var m *api.MadeShed
			for i := range l.Sheds {
				if l.Sheds[i].Name == args[0] && l.Sheds[i].Orphan == "" {
					m = &l.Sheds[i]
				}
			}
			if m == nil || m.Addr == "" {
				return fmt.Errorf("spuff: no made shed %q with an address (spuff list)", api.Printable(args[0]))
			}
			st, err := g.client.Status(cmd.Context())
			if err != nil {
				return err
			}
			// The same options as ssh-config's block, so both log in alike.
			opts, err := shedOptions(*m, identityOf(st), knownHostsPath())
			if err != nil {
				return err
			}
			var sshArgs []string
			for _, o := range opts {
				sshArgs = append(sshArgs, "-o", o.key+"="+o.value)
			}
			sshArgs = append(sshArgs, m.Alias)
			if len(args) > 1 {
				sshArgs = append(append(sshArgs, "--"), args[1:]...)
			}
			c := exec.CommandContext(cmd.Context(), "ssh", sshArgs...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			err = c.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				cmd.SilenceErrors = true
				return err
			}
			return err
		},
	}
}

// printMade lists the sheds spuff made, below the attachments.
func printMade(ctx context.Context, g *globals, w io.Writer) error {
	l, err := g.client.Made(ctx)
	if err != nil {
		return err
	}
	for _, n := range l.Notes {
		fmt.Fprintln(w, "note:", api.Printable(n))
	}
	if len(l.Sheds) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MADE\tPROVIDER\tSTATE\tADDRESS\tAGE\tIDLE LEFT\tNOTE")
	for _, s := range l.Sheds {
		p := api.Printable
		// A failed row is an orphan too once its machine is gone; the
		// reason is what says why, so it is kept beside the orphan note.
		note := s.Reason
		if s.Orphan != "" {
			note = strings.TrimSuffix("orphan: "+s.Orphan+"; "+s.Reason, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p(s.Name), p(s.Provider), p(s.State), p(s.Addr), ago(s.Created), idleLeft(s), p(note))
	}
	return tw.Flush()
}

// idleLeft is the IDLE LEFT column: how long until the host ends the shed
// if it stays idle, "never" when it has no idle timeout, "-" when the host
// has not asked it (not ready yet, or stopped).
func idleLeft(s api.MadeShed) string {
	switch {
	case s.IdleTimeoutSeconds != nil && *s.IdleTimeoutSeconds == 0:
		return "never"
	case s.IdleLeftSeconds == nil:
		return "-"
	}
	return (time.Duration(*s.IdleLeftSeconds) * time.Second).String()
}
