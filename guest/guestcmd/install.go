package guestcmd

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spuff-dev/spuff/guest/dockerhelper"
	guestfiles "github.com/spuff-dev/spuff/packaging/guest"
)

// install puts spuff-guest in place in a shed: the binaries, the systemd
// unit for the shed's user, the login environment and the user's docker
// config, then enables the unit. With --agent-token-stdin it also turns
// on the agent API with the per-shed token the host sends on stdin (never
// in argv, user-data or a log).
func install(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	userName := fs.String("user", os.Getenv("SUDO_USER"), "the shed's user: the daemon runs as them and their sockets are theirs")
	root := fs.String("root", "/", "install under this directory (for images and tests)")
	home := fs.String("home", "", "the user's home directory (default: from the user database)")
	noEnable := fs.Bool("no-enable", false, "do not run systemctl")
	tokenStdin := fs.Bool("agent-token-stdin", false, "read the agent API's token from stdin (one line) and serve the API on "+agentAPIAddr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *userName == "" {
		return errors.New("install: name the shed's user with --user NAME")
	}
	u, err := user.Lookup(*userName)
	if err != nil {
		return fmt.Errorf("install: looking up user %q: %w", *userName, err)
	}
	if *home == "" {
		*home = filepath.Join(*root, u.HomeDir)
	}
	at := func(p string) string { return filepath.Join(*root, p) }

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install: finding this binary: %w", err)
	}
	steps := []struct{ from, to string }{{self, at("/usr/local/bin/spuff-guest")}}
	if helper := filepath.Join(filepath.Dir(self), "docker-credential-spuff"); fileExists(helper) {
		steps = append(steps, struct{ from, to string }{helper, at("/usr/local/bin/docker-credential-spuff")})
	}
	for _, s := range steps {
		if err := copyFile(s.from, s.to, 0o755); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "installed", s.to)
	}
	for name, dest := range map[string]string{
		"spuff-guest@.service":     at("/etc/systemd/system/spuff-guest@.service"),
		"spuff.conf.environment.d": at("/etc/environment.d/60-spuff.conf"),
		"profile.sh":               at("/etc/profile.d/spuff.sh"),
	} {
		b, err := guestfiles.Files.ReadFile(name)
		if err != nil {
			return err
		}
		if err := writeFile(dest, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "installed", dest)
	}
	if *tokenStdin {
		if err := agentEnv(stdin, at("/etc/spuff/guest.env")); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "agent API on", agentAPIAddr, "with the token from stdin, in", at("/etc/spuff/guest.env"))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cfg, err := dockerConfig(filepath.Join(*home, ".docker"), uid, gid)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "docker credentials via spuff in", cfg)
	// The unit hides /home (ProtectHome); the daemon may still rewrite the
	// user's docker config, and nothing else there.
	dropIn := at("/etc/systemd/system/spuff-guest@" + *userName + ".service.d/50-docker-config.conf")
	unitDocker := "[Service]\nProtectHome=tmpfs\nBindPaths=-" + filepath.Join(u.HomeDir, ".docker") + "\n"
	if err := writeFile(dropIn, []byte(unitDocker), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "installed", dropIn)

	unit := "spuff-guest@" + *userName
	if *noEnable || *root != "/" {
		fmt.Fprintf(stdout, "next: systemctl daemon-reload && systemctl enable --now %s\n", unit)
		return nil
	}
	// enable reloads systemd's configuration itself before --now starts
	// the unit, so no daemon-reload of its own: each is seconds under TCG.
	cmd := exec.Command("systemctl", "enable", "--now", unit)
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("install: systemctl enable --now %s: %w", unit, err)
	}
	fmt.Fprintf(stdout, "%s is running; `spuff-guest status` shows whether your computer is attached\n", unit)
	return nil
}

// dockerConfig sets credsStore to spuff in dir/config.json, keeping every
// other setting, and returns its path. The credHelpers entries per
// registry follow later: spuff-guest serve writes them from the host's
// answer each time the host attaches.
func dockerConfig(dir string, uid, gid int) (string, error) {
	c := dockerhelper.ConfigFile{Dir: dir, UID: uid, GID: gid}
	p := c.Path()
	if b, err := os.ReadFile(p); err == nil {
		var cfg struct {
			Auths map[string]any `json:"auths"`
		}
		if json.Unmarshal(b, &cfg) == nil && len(cfg.Auths) > 0 {
			return "", fmt.Errorf("install: %s holds registry logins (auths); a shed should not keep them — remove them, then retry", p)
		}
	}
	if err := c.Update(nil); err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	return p, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func copyFile(from, to string, mode os.FileMode) error {
	if a, err1 := os.Stat(from); err1 == nil {
		if b, err2 := os.Stat(to); err2 == nil && os.SameFile(a, b) {
			return nil
		}
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("install: reading %s: %w", from, err)
	}
	return writeFile(to, b, mode)
}

// writeFile replaces dest atomically.
func writeFile(dest string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	tmp := dest + ".spuff-tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("install: writing %s: %w", dest, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("install: placing %s: %w", dest, err)
	}
	return nil
}

// agentAPIAddr is where the agent API listens in a shed spuff made.
const agentAPIAddr = "127.0.0.1:7575"

// agentEnv writes the unit's environment file (root-only, 0600: systemd
// reads it before dropping to the shed's user) with the token read from
// stdin.
func agentEnv(stdin io.Reader, dest string) error {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("install: reading the agent token from stdin: %w", err)
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return errors.New("install: --agent-token-stdin: no token on stdin")
	}
	for _, r := range token {
		if r <= ' ' || r >= 0x7f || r == '"' || r == '\\' || r == '$' {
			return errors.New("install: the agent token must be printable ASCII without spaces, quotes, $ or backslashes")
		}
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	body := "# Written by spuff-guest install. Root-only: it holds the agent API token.\n" +
		"SPUFF_AGENT_TOKEN=" + token + "\nSPUFF_GUEST_ARGS=--agent-listen " + agentAPIAddr + "\n"
	return writeFile(dest, []byte(body), 0o600)
}
