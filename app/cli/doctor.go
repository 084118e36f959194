package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/login"
	"github.com/spuff-dev/spuff/guest/bus"
)

// finding is one doctor line: ok, a warning, or a failure with its fix.
type finding struct {
	level string // ok | warn | fail
	what  string
	fix   string
}

func doctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the host side end to end and say what to fix",
		Long: `Doctor checks this computer's side of spuff: the config file and its mode,
the broker (spuff-app), its control socket and whether it starts at login, the
audit log and the replay fence, where SSH keys come from (and which were
skipped, and why), the AWS and docker settings, the keychain that keeps
approvals, and every attached shed's connection.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var fs []finding
			add := func(level, what, fix string) { fs = append(fs, finding{level, what, fix}) }

			// The config to check is the one the broker loaded (spuff-app
			// --config FILE), or the default while no broker runs.
			st, stErr := g.client.Status(cmd.Context())
			path := config.ConfigPath()
			if stErr == nil && st.Config != "" {
				path = st.Config
			}
			cfg, err := config.Load(path)
			switch {
			case err != nil:
				add("fail", "config "+path, err.Error())
			default:
				if _, serr := os.Stat(path); serr != nil {
					add("ok", "config: none at "+path+"; defaults apply", "")
				} else {
					add("ok", "config "+path, "")
				}
			}

			if stErr != nil {
				add("fail", "broker", stErr.Error())
				return report(cmd.OutOrStdout(), fs)
			}
			add("ok", fmt.Sprintf("broker spuff-app %s (pid %d)", st.Version, st.PID), "")
			if login.Enabled() {
				add("ok", "spuff-app starts at login", "")
			} else {
				add("warn", "spuff-app does not start at login", "run: spuff autostart on (or tick Start at login in the tray); a server can run spuff-app --headless as a service instead")
			}
			if a := st.Audit; a.Failing() {
				add("fail", fmt.Sprintf("audit log failing since %s, so every request is denied: %s", a.Since.Local().Format(time.TimeOnly), api.Printable(a.Error)),
					"free space or fix permissions where "+st.AuditLog+" lives; the next request that can be written and flushed heals it")
			} else if fi, err := os.Stat(st.AuditLog); err != nil {
				add("warn", "audit log "+st.AuditLog+" not written yet", "it appears with the first request")
			} else if fi.Mode().Perm()&0o077 != 0 {
				add("fail", fmt.Sprintf("audit log %s is mode %04o", st.AuditLog, fi.Mode().Perm()), "run: chmod 600 "+st.AuditLog)
			} else {
				add("ok", "audit log "+st.AuditLog, "")
			}
			fenceCheck(st.Fence, add)
			if st.Keychain == "file" {
				add("warn", "approvals are kept in a 0600 file", "no Secret Service answered; install gnome-keyring or KeePassXC to keep them in a keyring")
			} else if st.Keychain != "" {
				add("ok", "approvals kept in "+st.Keychain, "")
			}
			sshChecks(st, add)
			if cfg != nil {
				configChecks(cfg, add)
			}
			for _, s := range st.Sheds {
				if s.State == "connected" {
					add("ok", fmt.Sprintf("shed %s connected (%s)", s.Name, s.URL), "")
				} else {
					add("fail", fmt.Sprintf("shed %s is %s: %s", s.Name, s.State, s.LastError), "is spuff-guest serve running in it? `spuff-guest status` there tells")
				}
			}
			return report(cmd.OutOrStdout(), fs)
		},
	}
}

func sshChecks(st *api.Status, add func(level, what, fix string)) {
	ssh := st.Helpers.SSH
	if ssh == nil || ssh.Mode == "" {
		return
	}
	add("ok", "ssh keys come from "+ssh.Mode+": they sign for sheds and log this computer in to ssh:// sheds", "")
	for _, k := range ssh.Skipped {
		add("warn", "ssh key "+k.Path+" not offered", k.Reason)
	}
}

func configChecks(cfg *config.Config, add func(level, what, fix string)) {
	if cfg.AWS.DefaultRole == "" {
		roles := 0
		for _, s := range cfg.Sheds {
			if s.AWS != nil && s.AWS.Role != "" {
				roles++
			}
		}
		if roles == 0 {
			add("warn", "no AWS role configured", "set aws.default_role (or sheds.NAME.aws.role) to give sheds AWS credentials")
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		if _, err := os.Stat(filepath.Join(home, ".aws")); err != nil && os.Getenv("AWS_CONFIG_FILE") == "" {
			add("warn", "no ~/.aws on this computer", "configure the source profile "+cfg.AWS.SourceProfile+" with `aws configure` or `aws configure sso`")
		}
	}
	destinationChecks(cfg, add)
	if !anyShedGetsDocker(cfg) {
		add("warn", "no docker registry is allowlisted", "add docker.registries (e.g. [ghcr.io]) to let sheds pull private images")
	}
}

// anyShedGetsDocker reports whether some shed may get docker credentials:
// one without a section of its own (the global allowlist), or one whose
// section allows the namespace and names a registry or all of them.
func anyShedGetsDocker(cfg *config.Config) bool {
	gets := func(s config.Shed) bool {
		return s.Allows(bus.NSDocker) && (len(s.Docker.Registries) > 0 || s.Docker.AllowAll)
	}
	// "" is never a shed's name, so it resolves to the global sections.
	if gets(cfg.ForShed("")) {
		return true
	}
	for name := range cfg.Sheds {
		if gets(cfg.ForShed(name)) {
			return true
		}
	}
	return false
}

func report(w io.Writer, fs []finding) error {
	failed := 0
	for _, f := range fs {
		mark := map[string]string{"ok": "✓", "warn": "!", "fail": "✗"}[f.level]
		fmt.Fprintf(w, "%s %s\n", mark, api.Printable(f.what))
		if f.fix != "" {
			fmt.Fprintf(w, "    → %s\n", api.Printable(f.fix))
		}
		if f.level == "fail" {
			failed++
		}
	}
	if failed > 0 {
		return errors.New("doctor found problems; fix the ✗ lines above")
	}
	return nil
}

// destinationChecks warns about ssh.destinations patterns that name no
// server in this computer's known_hosts: spuff refuses a login to a server
// known_hosts does not name, so such a pattern allows nothing.
func destinationChecks(cfg *config.Config, add func(level, what, fix string)) {
	pats := map[string]string{} // pattern → the config key that holds it
	for _, p := range cfg.SSH.Destinations {
		pats[p] = "ssh.destinations"
	}
	for name, sh := range cfg.Sheds {
		if sh.SSH != nil {
			for _, p := range sh.SSH.Destinations {
				pats[p] = "sheds." + name + ".ssh.destinations"
			}
		}
	}
	if len(pats) == 0 {
		return
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return
	}
	var names []string
	for _, f := range []string{"known_hosts", "known_hosts2"} {
		b, _ := os.ReadFile(filepath.Join(home, ".ssh", f))
		for line := range bytes.Lines(b) {
			// As spuff names servers: plain names only, no hashed or wildcard entries.
			marker, hosts, _, _, _, err := ssh.ParseKnownHosts(line)
			if err != nil || marker != "" {
				continue
			}
			for _, h := range hosts {
				if !strings.HasPrefix(h, "|") && !strings.ContainsAny(h, "*?!") {
					names = append(names, h)
				}
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(pats)) {
		if !config.MatchDestination([]string{p}, names) {
			add("warn", fmt.Sprintf("%s %q matches no server in ~/.ssh/known_hosts", pats[p], p), "ssh to it once from this computer so known_hosts names its host key (unhashed), or correct the pattern; until then sheds may not sign in to it")
		}
	}
}

// fenceCheck says whether the replay fence can be written. While it cannot,
// only requests dated ahead of this computer's clock are refused, so a
// shed whose clock runs fast is the one that notices.
func fenceCheck(f *api.FenceHealth, add func(level, what, fix string)) {
	switch {
	case f == nil || f.Path == "":
	case f.Failing():
		add("fail", fmt.Sprintf("replay fence failing since %s, so requests dated ahead of this computer's clock are refused: %s", f.Since.Local().Format(time.TimeOnly), api.Printable(f.Error)),
			"free space or fix permissions where "+f.Path+" lives; it heals within seconds once a line can be written and flushed there")
	default:
		add("ok", "replay fence "+f.Path, "")
	}
}
