package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control"
	"github.com/spuff-dev/spuff/app/control/api"
)

// sshIdentity is how OpenSSH logs in as the host's one identity, which
// spuff-app put in every shed's authorized_keys: the agent spuff-app signs
// with, or (local-keys) ssh's own default key files, which are the files
// local-keys reads.
type sshIdentity struct {
	mode  string // agent-forward | local-keys | "" (unknown)
	agent string // agent-forward: spuff-app's SSH_AUTH_SOCK
}

func identityOf(st *api.Status) sshIdentity {
	if st == nil || st.Helpers.SSH == nil {
		return sshIdentity{}
	}
	return sshIdentity{mode: st.Helpers.SSH.Mode, agent: st.Helpers.SSH.Agent}
}

// option is one ssh_config keyword and its value, as written in a file
// and as `ssh -o KEY=VALUE`.
type option struct{ key, value string }

var (
	hostChars = regexp.MustCompile(`^[A-Za-z0-9.:-]+$`)
	userChars = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// quoted writes a path as an ssh_config value: quoted for spaces (macOS
// agent sockets live under "Group Containers"), % doubled because these
// keywords expand %-tokens. A path ssh could not read back is refused.
func quoted(p string) (string, error) {
	if strings.ContainsAny(p, "\"\\") || strings.Contains(p, "${") || strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "", fmt.Errorf("spuff: the path %q cannot be written in an ssh config", api.Printable(p))
	}
	return `"` + strings.ReplaceAll(p, "%", "%%") + `"`, nil
}

// shedOptions are the options that reach shed m as its alias: its address,
// its host key checked under the alias in spuff's known_hosts (pinned
// before boot, or recorded by bootstrap, so never asked about), and the
// host identity. ForwardAgent is off: a shed gets its agent from spuff,
// never the developer's own.
func shedOptions(m api.MadeShed, id sshIdentity, knownHosts string) ([]option, error) {
	host, port, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return nil, fmt.Errorf("spuff: shed %q's address %q: %w", api.Printable(m.Name), api.Printable(m.Addr), err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || !hostChars.MatchString(host) {
		return nil, fmt.Errorf("spuff: shed %q's address %q is not host:port", api.Printable(m.Name), api.Printable(m.Addr))
	}
	if !userChars.MatchString(m.User) || m.Alias != "spuff-"+m.Name || !config.ValidShedName(m.Name) {
		return nil, fmt.Errorf("spuff: shed %q has no user and alias ssh can use", api.Printable(m.Name))
	}
	kh, err := quoted(knownHosts)
	if err != nil {
		return nil, err
	}
	opts := []option{{"HostName", host}, {"Port", port}, {"User", m.User}, {"HostKeyAlias", m.Alias},
		{"UserKnownHostsFile", kh}, {"StrictHostKeyChecking", "yes"}, {"ForwardAgent", "no"}}
	switch {
	case id.mode == "agent-forward" && filepath.IsAbs(id.agent):
		a, err := quoted(id.agent)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option{"IdentityAgent", a})
	case id.mode == "local-keys":
		opts = append(opts, option{"IdentityAgent", "none"}, option{"IdentitiesOnly", "yes"})
	}
	return opts, nil
}

// usable says whether ssh can reach m now.
func usable(m api.MadeShed) bool {
	return m.State == "ready" && m.Orphan == "" && m.Addr != ""
}

const sshConfigHeader = "# Written by spuff (spuff up, down, start, stop): one Host block per ready shed.\n# Do not edit; spuff rewrites it. Use it with `Include %s` at the top of ~/.ssh/config.\n"

// renderSSHConfig writes a Host spuff-NAME block per ready shed (only the
// one named, when only is set). Sheds that cannot be written are skipped
// and named in skipped.
func renderSSHConfig(sheds []api.MadeShed, id sshIdentity, knownHosts, only string) (out string, skipped []error) {
	var b strings.Builder
	for _, m := range sheds {
		if !usable(m) || (only != "" && m.Name != only) {
			continue
		}
		opts, err := shedOptions(m, id, knownHosts)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		fmt.Fprintf(&b, "\nHost %s\n", m.Alias)
		for _, o := range opts {
			fmt.Fprintf(&b, "  %s %s\n", o.key, o.value)
		}
	}
	return b.String(), skipped
}

func sshConfigPath() string { return filepath.Join(config.Home(), "ssh_config") }

func knownHostsPath() string { return filepath.Join(config.Home(), "known_hosts") }

func sshConfigCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh-config [NAME]",
		Short: "Print an OpenSSH config block per ready shed, so ssh, scp, rsync and editors reach it as spuff-NAME",
		Long: `ssh-config prints a Host spuff-NAME block for each ready shed spuff made (or
only NAME): its address, its host key checked under its alias in
~/.spuff/known_hosts, and the host's SSH identity. spuff up keeps the same
blocks in ~/.spuff/ssh_config; add "Include ~/.spuff/ssh_config" at the top
of ~/.ssh/config and every tool that reads it reaches a shed by name:

  ssh spuff-demo
  scp file.txt spuff-demo:
  rsync -a src/ spuff-demo:src/`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			only := ""
			if len(args) == 1 {
				only = args[0]
			}
			out, skipped, err := currentSSHConfig(cmd.Context(), g, only)
			if err != nil {
				return err
			}
			for _, e := range skipped {
				fmt.Fprintln(cmd.ErrOrStderr(), "spuff:", e)
			}
			if only != "" && out == "" {
				return fmt.Errorf("spuff: no ready shed %q spuff made (spuff list)", api.Printable(only))
			}
			_, err = io.WriteString(cmd.OutOrStdout(), strings.TrimPrefix(out, "\n"))
			return err
		},
	}
}

func currentSSHConfig(ctx context.Context, g *globals, only string) (string, []error, error) {
	st, err := g.client.Status(ctx)
	if err != nil {
		return "", nil, err
	}
	l, err := g.client.MadeRows(ctx)
	if err != nil {
		return "", nil, err
	}
	out, skipped := renderSSHConfig(l.Sheds, identityOf(st), knownHostsPath(), only)
	return out, skipped, nil
}

// refreshSSHConfig rewrites ~/.spuff/ssh_config after a lifecycle command,
// whatever its result (a failed up may still have changed the set). When
// the file goes from no shed to one it says how to include it, unless
// ~/.ssh/config already does. A failure here warns; the command stands.
func refreshSSHConfig(ctx context.Context, g *globals, stdout, stderr io.Writer) {
	out, skipped, err := currentSSHConfig(context.WithoutCancel(ctx), g, "")
	if err == nil {
		// The tip comes with a shed ssh can reach, not with an up that
		// failed before there was one; it comes again after the last
		// shed went and a new one came, which is rare and harmless.
		var first bool
		first, err = writeSSHConfig(sshConfigPath(), fmt.Sprintf(sshConfigHeader, sshConfigPath())+out)
		if err == nil && first && !includedBySSH() {
			fmt.Fprintf(stdout, "spuff keeps an OpenSSH config of your sheds in %s; to reach them as `ssh spuff-NAME` (scp, rsync, editors too), add this line at the top of ~/.ssh/config:\n  Include %s\n", sshConfigPath(), sshConfigPath())
		}
	}
	for _, e := range skipped {
		fmt.Fprintln(stderr, "spuff:", e)
	}
	// With spuff-app not running the command itself says so.
	if err != nil && !errors.Is(err, control.ErrNotRunning) {
		fmt.Fprintln(stderr, "spuff: warning: ~/.spuff/ssh_config not updated:", api.Printable(err.Error()))
	}
}

// writeSSHConfig replaces path (0600) with content, atomically; firstHost
// says content has the file's first Host block: never written before, or
// written with no shed in it.
func writeSSHConfig(path, content string) (firstHost bool, err error) {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, []byte(content)):
		return false, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("spuff: reading %s: %w", path, err)
	}
	firstHost = !hasHost(string(old)) && hasHost(content)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("spuff: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".ssh_config-*")
	if err != nil {
		return false, fmt.Errorf("spuff: writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err = f.WriteString(content); err == nil {
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return false, fmt.Errorf("spuff: writing %s: %w", path, err)
	}
	return firstHost, nil
}

// hasHost says whether an ssh_config spuff wrote has a Host block.
func hasHost(config string) bool { return strings.Contains(config, "\nHost ") }

// includedBySSH says whether ~/.ssh/config already names spuff's file.
func includedBySSH() bool {
	home, err := os.UserHomeDir()
	if err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(home, ".ssh", "config"))
	return err == nil && bytes.Contains(b, []byte("ssh_config")) && bytes.Contains(b, []byte("spuff"))
}
