package test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

func guestPing(t *testing.T, g *harness.Guest) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.GoBinary(t, "./guest/cmd/spuff-guest"), "ping", "--run-dir", g.RunDir)
	cmd.Env = g.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &pingErr{err: err, out: string(out)}
	}
	if !strings.Contains(string(out), "pong from the host") {
		t.Fatalf("ping printed %q", out)
	}
	return nil
}

type pingErr struct {
	err error
	out string
}

func (p *pingErr) Error() string { return p.err.Error() + ": " + p.out }

func pings(shed string) func(audit.Record) bool {
	return func(r audit.Record) bool { return r.Shed == shed && r.NS == "agent" && r.Op == "ping" }
}

func TestPingOverUnix(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	g := h.Guest(t, "local-one")
	if err := guestPing(t, g); err != nil {
		t.Fatal(err)
	}
	recs := h.FindAudit(t, pings("local-one"))
	if len(recs) != 1 || recs[0].Result != "ok" || recs[0].Approval != "none" {
		t.Fatalf("audit lines for the ping: %+v", recs)
	}
	fi, err := os.Stat(h.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestPingOverSSH(t *testing.T) {
	home := harness.ShortTempDir(t)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, pub := testenv.KeyPair(t, filepath.Join(home, ".ssh"), "id_ed25519", "ed25519")
	h := harness.Start(t, harness.Options{Env: map[string]string{"HOME": home}})
	g := h.Guest(t, "cloud-one", harness.GuestOptions{NoAttach: true})
	guestBin := testenv.GoBinary(t, "./guest/cmd/spuff-guest")
	forced := `command="` + guestBin + ` bus-stdio --run-dir ` + g.RunDir + `",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding `
	sshd := testenv.StartSSHD(t, forced+pub+"\n")
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	h.MustSpuff(t, "attach", "cloud-one", "ssh://"+user+"@"+sshd.Addr)
	h.WaitState(t, "cloud-one", "connected")
	if err := guestPing(t, g); err != nil {
		t.Fatal(err)
	}
	if recs := h.FindAudit(t, pings("cloud-one")); len(recs) != 1 || recs[0].Result != "ok" {
		t.Fatalf("audit lines for the ping: %+v", recs)
	}
	// The shed's host key was recorded on first contact (accept-new).
	kh, err := os.ReadFile(filepath.Join(h.Home, "known_hosts"))
	if err != nil || !strings.Contains(string(kh), strings.Fields(sshd.HostKeyPub)[1]) {
		t.Fatalf("known_hosts does not hold the shed's host key: %q %v", kh, err)
	}
}

// TestSSHModeGovernsLogin: the host logs in to an ssh:// shed with its one
// SSH identity, the keys ssh.mode chose to sign with. With local-keys it
// logs in with the ~/.ssh key while SSH_AUTH_SOCK names an agent that is not
// running; with agent-forward it logs in with the agent's keys only, so the
// same ~/.ssh key, unknown to the agent, does not get it in.
func TestSSHModeGovernsLogin(t *testing.T) {
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	attach := func(t *testing.T, mode string, env map[string]string) (*harness.Host, *harness.Guest) {
		t.Helper()
		home := harness.ShortTempDir(t)
		if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, pub := testenv.KeyPair(t, filepath.Join(home, ".ssh"), "id_ed25519", "ed25519")
		env["HOME"] = home
		h := harness.Start(t, harness.Options{Config: "ssh:\n  mode: " + mode + "\n", Env: env})
		g := h.Guest(t, "cloud-"+mode, harness.GuestOptions{NoAttach: true})
		forced := `command="` + testenv.GoBinary(t, "./guest/cmd/spuff-guest") + ` bus-stdio --run-dir ` + g.RunDir + `",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding `
		sshd := testenv.StartSSHD(t, forced+pub+"\n")
		h.MustSpuff(t, "attach", "cloud-"+mode, "ssh://"+user+"@"+sshd.Addr)
		return h, g
	}
	t.Run("local-keys, no agent running", func(t *testing.T) {
		h, g := attach(t, "local-keys", map[string]string{"SSH_AUTH_SOCK": filepath.Join(harness.ShortTempDir(t), "no-agent.sock")})
		h.WaitState(t, "cloud-local-keys", "connected")
		if err := guestPing(t, g); err != nil {
			t.Fatal(err)
		}
		var st api.Status
		if err := json.Unmarshal([]byte(h.MustSpuff(t, "status", "--json")), &st); err != nil || st.Helpers.SSH == nil || st.Helpers.SSH.Mode != "local-keys" {
			t.Fatalf("spuff status: %v %+v", err, st.Helpers.SSH)
		}
	})
	t.Run("agent-forward, the agent lacks the key", func(t *testing.T) {
		agentKey := sshkeystest.NewKey(t, t.TempDir(), "id_ecdsa", "ecdsa")
		ag := sshkeystest.StartAgent(t, agentKey.Path)
		h, _ := attach(t, "agent-forward", map[string]string{"SSH_AUTH_SOCK": ag.Sock})
		deadline := time.Now().Add(20 * time.Second)
		for {
			var sheds []api.Attachment
			if err := json.Unmarshal([]byte(h.MustSpuff(t, "list", "--json")), &sheds); err != nil || len(sheds) != 1 {
				t.Fatalf("spuff list: %v %+v", err, sheds)
			}
			if sheds[0].State == api.StateConnected {
				t.Fatal("the host logged in with a ~/.ssh key while ssh.mode is agent-forward")
			}
			if strings.Contains(sheds[0].LastError, "unable to authenticate") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no authentication failure reported: %+v\n%s", sheds[0], h.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestReconnectAfterGuestRestart(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	g := h.Guest(t, "phoenix")
	if err := guestPing(t, g); err != nil {
		t.Fatal(err)
	}
	g.Restart(t)
	// While the host has not yet redialled, the guest must fail fast and say why.
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		start := time.Now()
		last = guestPing(t, g)
		if last == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("a ping with no host took %s; it must fail fast", time.Since(start))
		}
		if !strings.Contains(last.Error(), "spuff is not running on your computer") {
			t.Fatalf("a ping with no host said %v; want the actionable text", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("the broker did not reconnect: %v\n%s", last, h.Log())
	}
	if n := len(h.FindAudit(t, pings("phoenix"))); n != 2 {
		t.Fatalf("%d ping lines, want 2", n)
	}
}

func TestBrokerRestartReattaches(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	g := h.Guest(t, "steady")
	gone := h.Guest(t, "gone")
	h.MustSpuff(t, "detach", "gone")
	h.Restart(t)
	h.WaitState(t, "steady", "connected")
	if err := guestPing(t, g); err != nil {
		t.Fatalf("ping after the broker restarted: %v", err)
	}
	out := h.MustSpuff(t, "list")
	if strings.Contains(out, "gone") {
		t.Fatalf("a detached shed came back after restart:\n%s", out)
	}
	if err := guestPing(t, gone); err == nil {
		t.Fatal("the detached shed's ping was answered")
	}
	if fi, err := os.Stat(filepath.Join(h.Home, "state.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.db: %v %v, want 0600", fi, err)
	}
}

func TestControlSocketRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	h := harness.Start(t, harness.Options{})
	for path, want := range map[string]os.FileMode{h.Socket: 0o600, filepath.Dir(h.Socket): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	// Loosen the file modes so only the peer-credential check stands between
	// another user and the broker.
	for _, p := range []string{h.Home, filepath.Dir(h.Socket), h.Socket, h.Dir} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	cli := testenv.GoBinary(t, "./app/cmd/spuff")
	if err := os.Chmod(filepath.Dir(cli), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cli, "--socket", h.Socket, "status")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a client running as uid 65534 was served: %s", out)
	}
	if !h.LogShows("refused a peer of another user") {
		t.Fatalf("the broker did not log the refusal:\n%s", h.Log())
	}
	if _, err := h.Spuff(t, "status"); err != nil {
		t.Fatalf("the owner was refused: %v", err)
	}
}

func TestAppRefusesUnsafeConfig(t *testing.T) {
	app := testenv.GoBinary(t, "./app/cmd/spuff-app")
	cases := map[string]struct {
		yaml string
		mode os.FileMode
		want []string
	}{
		"world readable": {"ssh:\n  mode: auto\n", 0o644, []string{"chmod 600"}},
		"token in file":  {"digitalocean_token: abcdef0123456789\n", 0o600, []string{"DIGITALOCEAN_TOKEN"}},
		"aws secret":     {"aws:\n  secret_access_key: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n", 0o600, []string{"secret_access_key"}},
		"unknown key":    {"aws:\n  sesion_duration: 1h\n", 0o600, []string{"aws.sesion_duration"}},
		// The audit log is never silently off: no log, no broker.
		"audit to a device": {"audit:\n  path: /dev/null\n", 0o600, []string{"audit", "not a regular file"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := harness.ShortTempDir(t)
			cfg := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(cfg, []byte(c.yaml), c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(cfg, c.mode); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(app, "--headless", "--config", cfg)
			cmd.Env = append(os.Environ(), "SPUFF_HOME="+dir, "HOME="+dir, "XDG_DATA_HOME="+dir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("spuff-app started with %s", name)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("message %q does not mention %q", out, w)
				}
			}
			for _, secret := range []string{"abcdef0123456789", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"} {
				if strings.Contains(string(out), secret) {
					t.Fatalf("the error echoes the secret value")
				}
			}
		})
	}
}

// TestAuditFollow runs `spuff audit --follow --shed NAME --json` and sees a
// new line for that shed, and none for another.
func TestAuditFollow(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	mine, other := h.Guest(t, "followed"), h.Guest(t, "ignored")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.GoBinary(t, "./app/cmd/spuff"), "--socket", h.Socket, "audit", "--follow", "--shed", "followed", "--json")
	cmd.Env = h.Env()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	time.Sleep(500 * time.Millisecond) // let follow reach the end of the log
	if err := guestPing(t, other); err != nil {
		t.Fatal(err)
	}
	if err := guestPing(t, mine); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case l := <-lines:
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Shed != "followed" || r.Op != "ping" || r.Result != "ok" {
			t.Fatalf("followed line %q (%v)", l, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("spuff audit --follow printed nothing for a new request")
	}
	select {
	case l := <-lines:
		t.Fatalf("a second line arrived, for a filtered shed or twice: %q", l)
	case <-time.After(500 * time.Millisecond):
	}
}
