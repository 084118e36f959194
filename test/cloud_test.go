package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/provisioning/digitalocean/dofake"
	"github.com/spuff-dev/spuff/provisioning/hetzner/hcloudfake"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// cloudHost is spuff-app --headless pointed at both fake cloud APIs (by
// the test-only SPUFF_*_API_URL overrides), with random tokens for both, so
// every `spuff list` reconciles against both fakes and never reaches a
// real API. It keeps every output spuff and spuff-app printed, for the
// token grep.
type cloudHost struct {
	h       *harness.Host
	do      *dofake.Server
	hc      *hcloudfake.Fake
	home    string // HOME: ~/.ssh with the host's login key
	pub     string // that key, authorized_keys form
	tokens  map[string]string
	cli     string
	mu      sync.Mutex
	printed []string // CLI output, and spuff-app's log of each run
}

type cloudOptions struct {
	// Env adds to spuff-app's environment (test-only overrides).
	Env map[string]string
	// Config is appended to the provision section.
	Config string
	// Sections are whole top-level config sections after it.
	Sections string
	// Agent runs an ssh-agent holding the login key for spuff-app and
	// the OpenSSH of `spuff ssh` (which reads no $HOME/.ssh).
	Agent bool
	// Tune sets the fakes up before spuff-app starts.
	Tune func(*dofake.Server, *hcloudfake.Fake)
}

func startCloudHost(t *testing.T, o cloudOptions) *cloudHost {
	t.Helper()
	c := &cloudHost{home: harness.ShortTempDir(t), cli: testenv.GoBinary(t, "./app/cmd/spuff"), tokens: map[string]string{
		"DIGITALOCEAN_TOKEN": testenv.RandomSecret("dop_v1_"),
		"HCLOUD_TOKEN":       testenv.RandomSecret("hc"),
	}}
	c.do = dofake.New(t, c.tokens["DIGITALOCEAN_TOKEN"])
	c.hc = hcloudfake.New(t, c.tokens["HCLOUD_TOKEN"])
	if o.Tune != nil {
		o.Tune(c.do, c.hc)
	}
	sshDir := filepath.Join(c.home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Without an agent spuff-app logs in to sheds with this key file.
	keyPath, pub := testenv.KeyPair(t, sshDir, "id_ed25519", "ed25519")
	c.pub = pub
	env := map[string]string{"HOME": c.home, "SPUFF_DIGITALOCEAN_API_URL": c.do.URL, "SPUFF_HCLOUD_API_URL": c.hc.URL}
	if o.Agent {
		env["SSH_AUTH_SOCK"] = startAgent(t, c.home, keyPath)
	}
	for k, v := range c.tokens {
		env[k] = v
	}
	for k, v := range o.Env {
		env[k] = v
	}
	c.h = harness.Start(t, harness.Options{Config: "provision: {user: dev" + o.Config + "}\n" + o.Sections, Env: env})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("spuff-app log:\n%s", c.h.Log())
		}
		for _, v := range append(c.do.Violations(), c.hc.Violations()...) {
			t.Errorf("a fake API saw: %s", v)
		}
	})
	return c
}

// spuff runs the CLI (with --debug where the command takes it) and keeps
// its stdout and stderr.
func (c *cloudHost) spuff(timeout time.Duration, args ...string) (string, error) {
	var out bytes.Buffer
	err := runSpuff(c.h, c.cli, timeout, nil, &out, &out, args...)
	c.keep("spuff "+strings.Join(args, " "), out.String())
	return out.String(), err
}

// keep records what a process printed, for the token grep.
func (c *cloudHost) keep(what, printed string) {
	c.mu.Lock()
	c.printed = append(c.printed, what+":\n"+printed)
	c.mu.Unlock()
}

// made returns the line of `spuff list` for the made shed name ("" if
// none), with the whole output.
func (c *cloudHost) made(t *testing.T, name string) (line, all string) {
	t.Helper()
	out, err := c.spuff(time.Minute, "list")
	if err != nil {
		t.Fatalf("spuff list: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	inMade := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "MADE" {
			inMade = true
			continue
		}
		if inMade && len(f) > 0 && f[0] == name {
			return sc.Text(), out
		}
	}
	return "", out
}

// left says what a fake still holds; "" when nothing.
func (c *cloudHost) left(provider string) string {
	switch provider {
	case "digitalocean":
		// The label tags stay, as other sheds share them; a firewall's
		// tag is the shed's own.
		d, fw, k := c.do.Droplets(), c.do.Firewalls(), c.do.Keys()
		tags := slices.DeleteFunc(c.do.Tags(), func(t string) bool { return !strings.HasPrefix(t, "spuff-fw:") })
		if len(d)+len(fw)+len(k)+len(tags) == 0 {
			return ""
		}
		return fmt.Sprintf("droplets %+v, firewalls %+v, keys %+v, tags %q", d, fw, k, tags)
	default:
		s, fw, k := c.hc.Servers(), c.hc.Firewalls(), c.hc.Keys()
		if len(s)+len(fw)+len(k) == 0 {
			return ""
		}
		return fmt.Sprintf("servers %+v, firewalls %+v, keys %+v", s, fw, k)
	}
}

// machines is how many VMs the provider's fake holds.
func (c *cloudHost) machines(provider string) int {
	if provider == "digitalocean" {
		return len(c.do.Droplets())
	}
	return len(c.hc.Servers())
}

// tokenUsed fails the test unless the provider's fake was sent its token
// (in the Authorization header): a grep for a token spuff-app never held
// could not fail.
func (c *cloudHost) tokenUsed(t *testing.T, provider string) {
	t.Helper()
	want := "Bearer " + c.tokens["HCLOUD_TOKEN"]
	n := 0
	if provider == "digitalocean" {
		want = "Bearer " + c.tokens["DIGITALOCEAN_TOKEN"]
		for _, r := range c.do.Requests() {
			if r.Header.Get("Authorization") == want {
				n++
			}
		}
	} else {
		for _, r := range c.hc.Requests() {
			if r.Header.Get("Authorization") == want {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatalf("the %s fake never got the token: the token grep would prove nothing", provider)
	}
}

// noTokenOnHost greps for both tokens in every file under the host's
// scratch dir (~/.spuff with state.db and known_hosts, the audit log) and
// HOME, in every output of spuff and in spuff-app's log (--debug).
func (c *cloudHost) noTokenOnHost(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	printed := append(append([]string(nil), c.printed...), "spuff-app:\n"+c.h.Log())
	c.mu.Unlock()
	var read []string
	for _, root := range []string{c.h.Dir, c.home} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			read = append(read, p)
			for v, tok := range c.tokens {
				if bytes.Contains(b, []byte(tok)) {
					t.Errorf("%s is in %s", v, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{filepath.Join(c.h.Home, "state.db"), c.h.AuditPath} {
		found := false
		for _, p := range read {
			found = found || p == want
		}
		if !found {
			t.Errorf("the token grep did not read %s (read %v)", want, read)
		}
	}
	for _, out := range printed {
		for v, tok := range c.tokens {
			if strings.Contains(out, tok) {
				name, _, _ := strings.Cut(out, ":\n")
				t.Errorf("%s is in the output of %s", v, name)
			}
		}
	}
}

var cloudProviders = []string{"digitalocean", "hetzner"}

// TestCloudHalfFailedUp: through the real spuff-app and CLI, an up whose
// firewall the API refuses, or whose VM never becomes ready within the
// create timeout (shortened for the test by the test-only
// SPUFF_*_READY_TIMEOUT), leaves nothing at the provider and a failed row
// with its reason in `spuff list`, which `spuff down` clears. No token is
// anywhere on the host afterwards.
func TestCloudHalfFailedUp(t *testing.T) {
	for _, prov := range cloudProviders {
		for _, tc := range []struct {
			name   string
			tune   func(*dofake.Server, *hcloudfake.Fake)
			reason string // in the failed row
		}{
			{"firewall", func(d *dofake.Server, h *hcloudfake.Fake) {
				d.FailFirewall = 422
				h.FailFirewall = "resource_limit_exceeded"
			}, "firewall"},
			{"never ready", func(d *dofake.Server, h *hcloudfake.Fake) {
				d.NeverActive = true
				h.NeverRunning = true
			}, "within 3s"},
		} {
			t.Run(prov+"/"+tc.name, func(t *testing.T) {
				c := startCloudHost(t, cloudOptions{Tune: tc.tune, Env: map[string]string{
					"SPUFF_DIGITALOCEAN_READY_TIMEOUT": "3s", "SPUFF_HCLOUD_READY_TIMEOUT": "3s"}})
				out, err := c.spuff(2*time.Minute, "up", "half", "--provider", prov, "--no-connect")
				if err == nil {
					t.Fatalf("spuff up succeeded:\n%s", out)
				}
				if !strings.Contains(out, tc.reason) || !strings.Contains(out, "spuff down half") {
					t.Errorf("spuff up's error does not say %q and how to clean up:\n%s", tc.reason, out)
				}
				if l := c.left(prov); l != "" {
					t.Errorf("left at %s after the failed up: %s", prov, l)
				}
				line, all := c.made(t, "half")
				if !strings.Contains(line, prov) || !strings.Contains(line, "failed") || !strings.Contains(line, tc.reason) {
					t.Fatalf("spuff list has no failed row with the reason %q:\n%s", tc.reason, all)
				}
				if out, err := c.spuff(time.Minute, "down", "half"); err != nil {
					t.Fatalf("spuff down: %v\n%s", err, out)
				}
				if line, all := c.made(t, "half"); line != "" {
					t.Errorf("the row outlived spuff down:\n%s", all)
				}
				if l := c.left(prov); l != "" {
					t.Errorf("left at %s after down: %s", prov, l)
				}
				c.tokenUsed(t, prov)
				c.noTokenOnHost(t)
			})
		}
	}
}

// TestCloudUpTakesTheShedsOwnProvider: through the real spuff-app and
// CLI, `spuff up NAME` with no --provider goes to the cloud that
// sheds.NAME.provider names, and to no other. The VMs never become ready,
// so each up fails fast; `spuff list` shows the provider, and the down
// leaves nothing at either cloud.
func TestCloudUpTakesTheShedsOwnProvider(t *testing.T) {
	c := startCloudHost(t, cloudOptions{
		Tune:     func(d *dofake.Server, h *hcloudfake.Fake) { d.NeverActive, h.NeverRunning = true, true },
		Env:      map[string]string{"SPUFF_DIGITALOCEAN_READY_TIMEOUT": "3s", "SPUFF_HCLOUD_READY_TIMEOUT": "3s"},
		Sections: "sheds: {at-do: {provider: digitalocean}, at-hc: {provider: hetzner}}\n",
	})
	creates := func() (do, hc int) {
		for _, r := range c.do.Requests() {
			if r.Method == http.MethodPost && strings.TrimSuffix(r.Path, "/") == "/v2/droplets" {
				do++
			}
		}
		for _, r := range c.hc.Requests() {
			if r.Method == http.MethodPost && r.Path == "/servers" {
				hc++
			}
		}
		return do, hc
	}
	for _, tc := range []struct{ name, prov string }{{"at-do", "digitalocean"}, {"at-hc", "hetzner"}} {
		do0, hc0 := creates()
		out, err := c.spuff(2*time.Minute, "up", tc.name, "--no-connect")
		if err == nil {
			t.Fatalf("spuff up %s succeeded though its VM never became ready:\n%s", tc.name, out)
		}
		do1, hc1 := creates()
		if want := map[string][2]int{"digitalocean": {1, 0}, "hetzner": {0, 1}}[tc.prov]; [2]int{do1 - do0, hc1 - hc0} != want {
			t.Errorf("spuff up %s: %d droplet and %d server creates, want %v for %s:\n%s", tc.name, do1-do0, hc1-hc0, want, tc.prov, out)
		}
		if line, all := c.made(t, tc.name); !strings.Contains(line, tc.prov) {
			t.Errorf("spuff list does not show %s at %s:\n%s", tc.name, tc.prov, all)
		}
		if out, err := c.spuff(time.Minute, "down", tc.name); err != nil {
			t.Fatalf("spuff down %s: %v\n%s", tc.name, err, out)
		}
	}
	for _, prov := range cloudProviders {
		if l := c.left(prov); l != "" {
			t.Errorf("left at %s: %s", prov, l)
		}
	}
	c.noTokenOnHost(t)
}

// TestCloudCrashBetweenCreateAndState: spuff-app is killed (-9) while the
// fake holds the create's response, so the VM exists at the provider and
// state.db has no id for it. After a restart `spuff list` adopts it into
// the row (no orphan), and `spuff down` removes everything spuff made for
// it: the VM, its firewall and the login key it registered.
func TestCloudCrashBetweenCreateAndState(t *testing.T) {
	for _, prov := range cloudProviders {
		t.Run(prov, func(t *testing.T) {
			c, upDone := upHeldAtCreate(t, prov, "crash")
			c.crash(t, upDone, nil)

			line, all := c.made(t, "crash")
			if line == "" || strings.Contains(line, "orphan") {
				t.Fatalf("list after the crash did not adopt the VM into the row:\n%s", all)
			}
			if n := strings.Count(all, "crash "); n != 1 {
				t.Errorf("crash listed %d times:\n%s", n, all)
			}
			c.downLeavesNothing(t, prov, "crash")
		})
	}
}

// TestCloudPowerLossBeforeTheMachine: spuff-app and the spuff-cloud child
// making the VM die together (-9: a power cut, a killed session) while the
// create request is in flight, so the login key is registered and the
// firewall made but no VM exists, and nothing was left
// alive to clean up. After a restart the row is failed, and `spuff down`
// removes what that create left, though no machine carries it.
func TestCloudPowerLossBeforeTheMachine(t *testing.T) {
	for _, prov := range cloudProviders {
		t.Run(prov, func(t *testing.T) {
			c, upDone := upStalledAtCreate(t, prov, "lost")
			kids := children(t, c.h.PID(), "spuff-cloud")
			if len(kids) == 0 {
				t.Fatal("no spuff-cloud child is making the VM")
			}
			c.crash(t, upDone, kids)

			if line, all := c.made(t, "lost"); !strings.Contains(line, "failed") {
				t.Fatalf("the row after the power loss is not failed:\n%s", all)
			}
			if out := c.downLeavesNothing(t, prov, "lost"); !strings.Contains(out, "removing what an interrupted up left") {
				t.Errorf("spuff down did not say what it removed:\n%s", out)
			}
		})
	}
}

// TestCloudDownStopsTheUpUnderWay: `spuff down` of a shed whose `spuff up`
// still waits on the provider's create (the developer gave up on it)
// stops that up, whose spuff-cloud child ends its request, and then
// removes all the create made: the VM too, though the up never learnt its
// id. The up's own output says a down stopped it.
func TestCloudDownStopsTheUpUnderWay(t *testing.T) {
	for _, prov := range cloudProviders {
		t.Run(prov, func(t *testing.T) {
			c, upDone := upHeldAtCreate(t, prov, "gaveup")
			if out := c.downLeavesNothing(t, prov, "gaveup"); !strings.Contains(out, "stopping the up under way") {
				t.Errorf("spuff down did not say it stopped the up:\n%s", out)
			}
			select {
			case out := <-upDone:
				if !strings.Contains(out, "stopped by `spuff down`") {
					t.Errorf("spuff up does not say a down stopped it:\n%s", out)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the up outlived the down that removed its shed")
			}
		})
	}
}

// TestCloudInterruptedUp: a `spuff up` the developer interrupts (Ctrl-C)
// while the provider holds its create says that the up goes on in
// spuff-app and how to stop it, rather than a bare "context canceled";
// the shed is listed mid-step, and `spuff down` then removes all of it.
func TestCloudInterruptedUp(t *testing.T) {
	const prov = "digitalocean"
	hold := make(chan struct{})
	defer close(hold)
	c := startCloudHost(t, cloudOptions{Tune: func(d *dofake.Server, h *hcloudfake.Fake) { d.HoldCreate = hold }})
	var out bytes.Buffer
	up := exec.Command(c.cli, "--socket", c.h.Socket, "up", "gaveup", "--provider", prov, "--no-connect")
	up.Env, up.Stdout, up.Stderr = c.h.Env(), &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	c.await(t, func() bool { return c.machines(prov) > 0 })
	if err := up.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err == nil {
			t.Errorf("an interrupted spuff up exited 0:\n%s", out.String())
		}
	case <-time.After(30 * time.Second):
		_ = up.Process.Kill()
		t.Fatal("spuff up did not end on an interrupt")
	}
	c.keep("spuff up (interrupted)", out.String())
	for _, want := range []string{"goes on in spuff-app", "`spuff down gaveup` stops it"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the interrupted spuff up does not say %q:\n%s", want, out.String())
		}
	}
	if line, all := c.made(t, "gaveup"); !strings.Contains(line, "creating") {
		t.Errorf("the shed of the interrupted up is not listed as creating:\n%s", all)
	}
	c.downLeavesNothing(t, prov, "gaveup")
}

// upHeldAtCreate starts a cloud host whose fakes hold every create's
// answer (the VM exists at the provider; the up never learns its id) until
// the test ends, and runs `spuff up name` on prov in the background. It
// returns once the VM exists, with the channel the up's output arrives on.
func upHeldAtCreate(t *testing.T, prov, name string) (*cloudHost, <-chan string) {
	t.Helper()
	hold := make(chan struct{})
	c := startCloudHost(t, cloudOptions{Tune: func(d *dofake.Server, h *hcloudfake.Fake) {
		d.HoldCreate, h.HoldCreate = hold, hold
	}})
	t.Cleanup(func() { close(hold) })
	upDone := c.upInBackground(prov, name)
	c.await(t, func() bool { return c.machines(prov) > 0 })
	return c, upDone
}

// TestCloudQuitDuringUp: spuff-app told to stop (SIGTERM to its process
// group, as Ctrl-C in its terminal or a service manager's stop sends)
// while the provider stalls an up's create. The up is stopped rather than
// killed half-way: its spuff-cloud child removes the login key and (at
// Hetzner) the firewall that create made, and the up writes its own failed
// row and audit line before spuff-app exits, so nothing waits for the next
// start to be found. At DigitalOcean the firewall and its tag stay until
// the down: the create got no answer, and a droplet made all the same,
// even later, must come up behind its firewall.
func TestCloudQuitDuringUp(t *testing.T) {
	for _, prov := range cloudProviders {
		t.Run(prov, func(t *testing.T) {
			c, upDone := upStalledAtCreate(t, prov, "quit")
			c.h.Stop(t)
			<-upDone
			c.keep("spuff-app (stopped)", c.h.Log())
			if prov == "digitalocean" {
				if d, fw, k := c.do.Droplets(), c.do.Firewalls(), c.do.Keys(); len(d)+len(k) != 0 || len(fw) != 1 {
					t.Errorf("at digitalocean after spuff-app quit: droplets %+v, keys %+v, firewalls %+v; want only the firewall", d, k, fw)
				}
			} else if l := c.left(prov); l != "" {
				t.Errorf("left at %s after spuff-app quit: %s", prov, l)
			}
			lines := c.h.FindAudit(t, func(r audit.Record) bool { return r.Shed == "quit" && r.Op == "up" })
			if len(lines) != 1 || lines[0].Result != audit.ResultError || !strings.Contains(lines[0].Detail, "spuff-app quit") {
				t.Fatalf("the up's audit lines after the quit: %+v, want its own error line saying spuff-app quit", lines)
			}
			c.h.Restart(t)
			if line, all := c.made(t, "quit"); !strings.Contains(line, "failed") || !strings.Contains(line, "spuff-app quit") {
				t.Errorf("the row after the quit is not failed with its reason:\n%s", all)
			}
			c.downLeavesNothing(t, prov, "quit")
		})
	}
}

// upStalledAtCreate starts a cloud host whose fakes stall every create
// once its login key and its firewall exist, before any VM,
// until the test ends, and runs `spuff up name` on prov in the background.
// It returns once the create stalls, with the channel the up's output
// arrives on.
func upStalledAtCreate(t *testing.T, prov, name string) (*cloudHost, <-chan string) {
	t.Helper()
	stall := make(chan struct{})
	c := startCloudHost(t, cloudOptions{Tune: func(d *dofake.Server, h *hcloudfake.Fake) {
		d.StallCreate, h.StallCreate = stall, stall
	}})
	t.Cleanup(func() { close(stall) })
	upDone := c.upInBackground(prov, name)
	c.await(t, func() bool { return c.stalled(prov) > 0 })
	if c.left(prov) == "" {
		t.Fatal("the create stalled before it registered anything: this test would pass on any code")
	}
	return c, upDone
}

// stalled is how many creates prov's fake holds before making anything.
func (c *cloudHost) stalled(prov string) int {
	if prov == "digitalocean" {
		return c.do.Stalled()
	}
	return c.hc.Stalled()
}

// upInBackground runs `spuff up name` on prov; its output arrives on the
// channel once it ends.
func (c *cloudHost) upInBackground(prov, name string) <-chan string {
	done := make(chan string, 1)
	go func() {
		out, _ := c.spuff(2*time.Minute, "up", name, "--provider", prov, "--no-connect")
		done <- out
	}()
	return done
}

// await waits up to a minute for cond.
func (c *cloudHost) await(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no create reached the fake:\n%s", c.h.Log())
		}
	}
}

// crash kills spuff-app (-9), and with it the processes in kids,
// stopped first so that none can clean up once its parent is gone; then,
// once the up running meanwhile has ended, starts spuff-app again.
func (c *cloudHost) crash(t *testing.T, upDone <-chan string, kids []int) {
	t.Helper()
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	c.h.Kill(t)
	<-c.h.Exited()
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	c.keep("spuff-app (killed)", c.h.Log())
	<-upDone
	c.h.Restart(t)
}

// downLeavesNothing runs `spuff down name` and checks that prov's fake
// holds nothing and the shed is no longer listed, that the provider was
// sent its token, and that the token is nowhere on the host. It returns
// what the down printed.
func (c *cloudHost) downLeavesNothing(t *testing.T, prov, name string) string {
	t.Helper()
	out, err := c.spuff(time.Minute, "down", name)
	if err != nil {
		t.Fatalf("spuff down: %v\n%s", err, out)
	}
	if l := c.left(prov); l != "" {
		t.Errorf("left at %s after down: %s", prov, l)
	}
	if line, all := c.made(t, name); line != "" {
		t.Errorf("still listed after down:\n%s", all)
	}
	c.tokenUsed(t, prov)
	c.noTokenOnHost(t)
	return out
}

// children returns the pids of parent's children whose command is comm.
func children(t *testing.T, parent int, comm string) []int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open || string(b[open+1:end]) != comm {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open]))); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// TestCloudSSHCommandsAskNoProvider: `spuff ssh NAME` and `spuff
// ssh-config` need a row's address, not the clouds' machines, so they make
// no cloud API call (each would cost a spuff-cloud child and a round trip
// per provider with a token, on every login); `spuff list` does ask both.
func TestCloudSSHCommandsAskNoProvider(t *testing.T) {
	c := startCloudHost(t, cloudOptions{})
	asked := func() int { return len(c.do.Requests()) + len(c.hc.Requests()) }
	if out, err := c.spuff(time.Minute, "list"); err != nil {
		t.Fatalf("spuff list: %v\n%s", err, out)
	}
	before := asked()
	if before == 0 {
		t.Fatal("spuff list asked neither fake: this test would pass on any code")
	}
	if out, err := c.spuff(time.Minute, "ssh-config"); err != nil {
		t.Fatalf("spuff ssh-config: %v\n%s", err, out)
	}
	if out, err := c.spuff(time.Minute, "ssh", "nosuch"); err == nil || !strings.Contains(out, `no made shed "nosuch"`) {
		t.Fatalf("spuff ssh of no shed: %v\n%s", err, out)
	}
	if n := asked() - before; n != 0 {
		t.Fatalf("ssh-config and ssh made %d cloud API calls, want none", n)
	}
}
