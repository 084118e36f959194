package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/digitalocean/dofake"
	"github.com/spuff-dev/spuff/provisioning/hetzner/hcloudfake"
	"github.com/spuff-dev/spuff/provisioning/qemu"
	"github.com/spuff-dev/spuff/provisioning/qemu/qemutest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestCloudVM: fake DigitalOcean API, real VM (one TCG boot). `spuff up
// --provider digitalocean` sends its droplet to the fake; the user-data
// the fake received is booted in QEMU with a seed that carries nothing
// else (no host key: a cloud VM makes its own, which spuff accepts on first
// contact and pins under the shed's alias). The fake reports the droplet
// active at 127.0.0.1 and the test-only SPUFF_DIGITALOCEAN_SSH_PORT names a
// port the test forwards to the VM's sshd, so the shed is bootstrapped and
// attached through the cloud provider's code path. The shed's agent lists
// the host's key; no token is in the shed (its disk overlay, its tmpfs)
// nor on the host; `spuff down` deletes the droplet at the fake, which
// stops the VM as the cloud would.
func TestCloudVM(t *testing.T) {
	qemutest.Require(t)
	t.Parallel()
	const name = "cloudvm"

	vmHome, err := os.MkdirTemp("", "spuff-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(vmHome) })
	qcfg := config.Default()
	qcfg.QEMU.Memory = "1GiB"
	qp, err := qemu.New(provisioning.Env{Config: qcfg, Getenv: os.Getenv, Logger: slog.New(slog.DiscardHandler), Home: vmHome, Cache: testenv.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	vm := qp.(*qemu.Provider)
	// Never leave QEMU running, whatever happens.
	t.Cleanup(func() { _ = vm.Delete(context.Background(), name) })

	fwd := newForwarder(t)
	var vmStopped sync.WaitGroup
	vmStopped.Add(1)
	var once sync.Once
	c := startCloudHost(t, cloudOptions{
		Agent: true,
		Env:   map[string]string{"SPUFF_DIGITALOCEAN_SSH_PORT": fwd.port, "SPUFF_GUEST_BIN_DIR": guestBinaries(t)},
		Tune: func(d *dofake.Server, _ *hcloudfake.Fake) {
			d.IP = "127.0.0.1"
			d.NeverActive = true // until the VM runs
			d.OnDelete = func(dr dofake.Droplet) {
				if dr.Name != name {
					return
				}
				if err := vm.Delete(context.Background(), name); err != nil {
					t.Errorf("stopping the VM of the deleted droplet: %v", err)
				}
				once.Do(vmStopped.Done)
			}
		},
	})

	upOut := make(chan string, 1)
	upErr := make(chan error, 1)
	go func() {
		out, err := c.spuff(15*time.Minute, "up", name, "--provider", "digitalocean")
		upOut <- out
		upErr <- err
	}()

	// The droplet the fake received, with its user-data.
	var dr dofake.Droplet
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if ds := c.do.Droplets(); len(ds) == 1 {
			dr = ds[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no droplet reached the fake:\n%s", c.h.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ud := []byte(dr.UserData)
	for _, tok := range c.tokens {
		if bytes.Contains(ud, []byte(tok)) {
			t.Fatal("the user-data holds a provider token")
		}
	}
	if bytes.Contains(ud, []byte("PRIVATE KEY")) || !bytes.Contains(ud, []byte(strings.Fields(c.pub)[1])) {
		t.Fatalf("the user-data holds a private key, or not the host's login key:\n%s", ud)
	}

	// Boot it: the seed holds the received user-data only (HostKey nil).
	m, err := vm.Create(context.Background(), provisioning.CreateRequest{
		Name: name, Labels: provisioning.Labels(name, "cloud-vm-test"), UserData: ud,
		Progress: func(s string) { t.Logf("qemu: %s", s) },
	})
	if err != nil {
		t.Fatalf("booting the droplet's user-data: %v", err)
	}
	fwd.to(m.SSHAddr)
	c.do.Activate(dr.ID)

	out, err := <-upOut, <-upErr
	t.Logf("spuff up %s:\n%s", name, out)
	if err != nil {
		b, _ := os.ReadFile(vm.ConsoleLog(name))
		t.Fatalf("spuff up: %v\nconsole tail:\n%s", err, tail(b, 4000))
	}
	for _, want := range []string{"droplet active", "bootstrapping", "ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("up's progress lacks %q", want)
		}
	}
	// The bus's ssh handshake and spuff-guest bus-stdio are slow under TCG.
	c.waitConnected(t, name, 3*time.Minute)

	// The host key the shed made at first boot is pinned under its alias.
	known, err := os.ReadFile(filepath.Join(c.h.Home, "known_hosts"))
	if err != nil || !bytes.Contains(known, []byte("spuff-"+name+" ")) {
		t.Errorf("~/.spuff/known_hosts has no key for spuff-%s: %v\n%s", name, err, known)
	}
	out, err = c.spuff(2*time.Minute, "ssh", name, "--", "SSH_AUTH_SOCK=/run/spuff/ssh-agent.sock", "ssh-add", "-L")
	if err != nil || !strings.Contains(out, strings.Fields(c.pub)[1]) {
		t.Fatalf("ssh-add -L in the shed: %v\n%s", err, out)
	}

	// No token in the shed: grep what is in memory-backed filesystems and
	// where the shed writes, in the shed (the patterns come on stdin, so no
	// command line or sudo log holds them), then, after a sync, the whole
	// disk overlay and the seed from the host. The host's login key, which
	// is in authorized_keys, is the grep's proof that it reads those places.
	const where = `sync; grep -rls -D skip -Ff /dev/stdin $(findmnt -rn -t tmpfs -o TARGET) /etc /home /root /var /opt /usr/local; echo "rc=$?"`
	blob := strings.Fields(c.pub)[1]
	if got := c.shedGrep(t, name, where, blob); !strings.Contains(got, "/home/dev/.ssh/authorized_keys") {
		t.Fatalf("the in-shed grep does not find the login key in authorized_keys, so it proves nothing:\n%s", got)
	}
	var toks []string
	for _, tok := range c.tokens {
		toks = append(toks, tok)
	}
	if got := c.shedGrep(t, name, where, strings.Join(toks, "\n")); !strings.Contains(got, "rc=1") {
		t.Errorf("a token is in the shed (or grep failed):\n%s", got)
	}
	var sawOverlay bool
	err = filepath.WalkDir(vm.Dir(name), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		found, err := fileContains(p, append([]string{blob}, toks...))
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".qcow2") && found[blob] {
			sawOverlay = true
		}
		for _, tok := range toks {
			if found[tok] {
				t.Errorf("a token is in the shed's %s", filepath.Base(p))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawOverlay {
		t.Error("no disk overlay under the shed's folder holds the login key: the overlay grep proves nothing")
	}

	if out, err := c.spuff(3*time.Minute, "down", name); err != nil {
		t.Fatalf("spuff down: %v\n%s", err, out)
	}
	vmStopped.Wait()
	if l := c.left("digitalocean"); l != "" {
		t.Errorf("left at the fake after down: %s", l)
	}
	if out, _ := exec.Command("pgrep", "-f", vm.Dir(name)).Output(); len(out) > 0 {
		t.Errorf("QEMU outlived down: %s", out)
	}
	if line, all := c.made(t, name); line != "" {
		t.Errorf("still listed after down:\n%s", all)
	}
	c.tokenUsed(t, "digitalocean")
	c.noTokenOnHost(t)
}

// waitConnected waits until the attachment name is connected.
func (c *cloudHost) waitConnected(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		out, err := c.h.Spuff(t, "list", "--json")
		var sheds []struct{ Name, State, LastError string }
		if err == nil && json.Unmarshal([]byte(out), &sheds) == nil {
			for _, s := range sheds {
				if s.Name == name {
					if s.State == "connected" {
						return
					}
					last = s.State + " " + s.LastError
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("shed %s not connected within %s (last: %s)", name, timeout, last)
}

// shedGrep runs script under sudo sh in the shed with patterns on stdin.
func (c *cloudHost) shedGrep(t *testing.T, name, script, patterns string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.cli, "--socket", c.h.Socket, "ssh", name, "--", "sudo", "sh", "-c", shellQuote(script))
	cmd.Env = c.h.Env()
	cmd.Stdin = strings.NewReader(patterns + "\n")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("spuff ssh: %v", err)
	}
	c.keep("spuff ssh "+name+" (grep)", string(out))
	return string(out)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fileContains streams path and says which needles it holds.
func fileContains(path string, needles []string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n))
	}
	found := map[string]bool{}
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 0, 2<<20)
	chunk := make([]byte, 1<<20)
	for {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for _, nd := range needles {
			if !found[nd] && bytes.Contains(buf, []byte(nd)) {
				found[nd] = true
			}
		}
		if len(buf) > longest {
			buf = append(buf[:0], buf[len(buf)-longest:]...)
		}
		if err == io.EOF {
			return found, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// forwarder is the address the fake's droplet answers on: 127.0.0.1:port,
// forwarded to the VM's sshd once the VM exists (refused until then, as a
// booting droplet's port 22 is).
type forwarder struct {
	port   string
	mu     sync.Mutex
	target string
}

func newForwarder(t *testing.T) *forwarder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	f := &forwarder{port: port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.pipe(c)
		}
	}()
	return f
}

func (f *forwarder) to(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = addr
}

func (f *forwarder) pipe(c net.Conn) {
	defer c.Close()
	f.mu.Lock()
	target := f.target
	f.mu.Unlock()
	if target == "" {
		return
	}
	u, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}

// guestBinaries builds spuff-guest and docker-credential-spuff for the
// shed into DIR/linux-amd64 and returns DIR (SPUFF_GUEST_BIN_DIR).
func guestBinaries(t *testing.T) string {
	t.Helper()
	dir := harness.ShortTempDir(t)
	bin := filepath.Join(dir, "linux-amd64")
	build := exec.Command("go", "build", "-o", bin+"/", "./guest/cmd/spuff-guest", "./guest/cmd/docker-credential-spuff")
	build.Dir, build.Env = testenv.RepoRoot(), append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v: %s", err, out)
	}
	return dir
}
