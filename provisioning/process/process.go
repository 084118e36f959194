// Package process is a provider for tests: a shed is a real `spuff-guest
// serve` run as a local process of the current user, with its files in
// Env.Home/sheds/NAME (0700) and its bus at unix://…/run/bus.sock. It has
// no sshd, so it reports its bus (Capabilities.ServesBus) and the Manager
// attaches that instead of bootstrapping over ssh.
//
// Such a shed is the host itself, not a machine apart, so the package
// registers itself only in builds tagged spuff_testprovider (tests build
// spuff-app so); release builds cannot make one.
package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/bootstrap"
	"github.com/spuff-dev/spuff/provisioning/internal/shedfs"
)

// Name is the provider's registered name.
const Name = "process"

// BootDelayEnv holds a Go duration Create and Start wait after starting
// spuff-guest, so that a test can watch a shed come up; default none.
const BootDelayEnv = "SPUFF_PROCESS_BOOT_DELAY"

// Files in a shed's folder.
const (
	metaFile = "process.json" // not qemu's machine.json: each provider lists only its own
	pidFile  = "guest.pid"
	logFile  = "guest.log"
	runDir   = "run"
)

// Provider runs sheds as local spuff-guest processes.
type Provider struct {
	home      string
	guest     string // the spuff-guest binary
	bootDelay time.Duration
	log       *slog.Logger
}

var _ provisioning.Provider = (*Provider)(nil)

// New builds the provider. spuff-guest is found as bootstrap finds the
// binaries it uploads: $SPUFF_GUEST_BIN_DIR/linux-ARCH, else bin/linux-ARCH
// beside the executable.
func New(env provisioning.Env) (provisioning.Provider, error) {
	if env.Home == "" {
		return nil, errors.New("process: Env.Home is required")
	}
	dir := env.Getenv(bootstrap.BinDirEnv)
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("process: finding spuff-guest: %w", err)
		}
		dir = filepath.Join(filepath.Dir(exe), "bin")
	}
	p := &Provider{home: env.Home, guest: filepath.Join(dir, "linux-"+runtime.GOARCH, "spuff-guest"), log: env.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if d := env.Getenv(BootDelayEnv); d != "" {
		v, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("process: %s: %w", BootDelayEnv, err)
		}
		p.bootDelay = v
	}
	return p, nil
}

// Name is "process".
func (p *Provider) Name() string { return Name }

// Capabilities: local, start/stop, and the provider serves the bus.
func (p *Provider) Capabilities() provisioning.Capabilities {
	return provisioning.Capabilities{StartStop: true, Local: true, ServesBus: true}
}

// meta is the shed folder's process.json.
type meta struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
}

// Dir is the folder of a shed's files.
func (p *Provider) Dir(name string) string { return shedfs.Dir(p.home, name) }

// Create writes the shed's folder and starts its spuff-guest. The
// user-data is not applied: there is no machine to apply it to, and the
// guest gets its keys from the host over the bus like any other.
func (p *Provider) Create(ctx context.Context, req provisioning.CreateRequest) (provisioning.Machine, error) {
	if !config.ValidShedName(req.Name) {
		return provisioning.Machine{}, fmt.Errorf("process: %q is not a shed name", req.Name)
	}
	progress := func(s string) {
		if req.Progress != nil {
			req.Progress(s)
		}
	}
	dir, err := shedfs.Make(p.home, req.Name)
	if err != nil {
		return provisioning.Machine{}, fmt.Errorf("process: %w", err)
	}
	m := provisioning.Machine{ID: req.Name, Name: req.Name, State: provisioning.Pending, Labels: req.Labels}
	progress("writing the shed's folder")
	md := meta{Name: req.Name, Labels: req.Labels, Created: time.Now().UTC()}
	b, err := json.MarshalIndent(md, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, metaFile), b, 0o600)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return provisioning.Machine{}, fmt.Errorf("process: %w", err)
	}
	m.Created = md.Created
	progress("starting spuff-guest serve")
	if err := p.start(req.Name); err != nil {
		_ = p.Delete(context.WithoutCancel(ctx), req.Name)
		return m, err
	}
	p.hold(ctx)
	return p.Get(ctx, req.Name)
}

// hold waits out the boot delay: a test watching a shed come up sees the
// step it is at for that long.
func (p *Provider) hold(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(p.bootDelay):
	}
}

// start runs the shed's spuff-guest. Its environment is built from
// nothing: the host's (provider tokens, SSH_AUTH_SOCK) must not reach a shed.
func (p *Provider) start(name string) error {
	dir := p.Dir(name)
	if _, err := os.Stat(p.guest); err != nil {
		return fmt.Errorf("process: spuff-guest: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(p.guest, "serve", "--run-dir", filepath.Join(dir, runDir), "--aws-listen", "off",
		"--docker-config", filepath.Join(dir, "docker"))
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin", "DOCKER_CONFIG=" + filepath.Join(dir, "docker")}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("process: starting spuff-guest: %w", err)
	}
	go cmd.Wait() //nolint:errcheck // reaps it; Get reads its state from the pid
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("process: %w", err)
	}
	return nil
}

// Get reports the shed from its folder and its process: Running once the
// process lives and its guest socket answers.
func (p *Provider) Get(_ context.Context, id string) (provisioning.Machine, error) {
	if !config.ValidShedName(id) {
		return provisioning.Machine{}, fmt.Errorf("process: shed %q: %w", id, provisioning.ErrNotFound)
	}
	dir := p.Dir(id)
	var md meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if errors.Is(err, os.ErrNotExist) {
		return provisioning.Machine{}, fmt.Errorf("process: shed %s: %w", id, provisioning.ErrNotFound)
	}
	if err == nil {
		err = json.Unmarshal(b, &md)
	}
	if err != nil {
		return provisioning.Machine{}, fmt.Errorf("process: shed %s: %w", id, err)
	}
	m := provisioning.Machine{ID: id, Name: md.Name, Labels: md.Labels, Created: md.Created, State: provisioning.Stopped, Status: "stopped"}
	pid := p.pid(id)
	switch {
	case pid == 0:
		if last := lastLine(filepath.Join(dir, logFile)); last != "" {
			m.Status = "stopped; spuff-guest last said: " + last
		}
	case !answers(filepath.Join(dir, runDir, "guest.sock")):
		m.State, m.Status = provisioning.Pending, "spuff-guest starting"
	default:
		m.State, m.Status = provisioning.Running, "running (pid "+strconv.Itoa(pid)+")"
		m.BusURL = "unix://" + filepath.Join(dir, runDir, "bus.sock")
	}
	return m, nil
}

func answers(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// lastLine is the last line of the guest's log, bounded.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// pid is the shed's live spuff-guest, or 0.
func (p *Provider) pid(name string) int { return shedfs.PID(p.Dir(name), pidFile) }

// List finds sheds by their folders' process.json.
func (p *Provider) List(ctx context.Context) ([]provisioning.Machine, error) {
	ms, err := shedfs.List(ctx, p.home, p.Get)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	return ms, nil
}

// Start runs a stopped shed's spuff-guest again.
func (p *Provider) Start(ctx context.Context, id string) error {
	if _, err := p.Get(ctx, id); err != nil {
		return err
	}
	if p.pid(id) > 0 {
		return nil
	}
	if err := p.start(id); err != nil {
		return err
	}
	p.hold(ctx)
	return nil
}

// Stop ends the shed's spuff-guest (SIGTERM, then SIGKILL), keeping its folder.
func (p *Provider) Stop(ctx context.Context, id string) error {
	if _, err := p.Get(ctx, id); err != nil {
		return err
	}
	pid := p.pid(id)
	if pid == 0 {
		return nil
	}
	dir := p.Dir(id)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if !waitGone(ctx, pid, dir, 5*time.Second) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !waitGone(ctx, pid, dir, 5*time.Second) {
			return fmt.Errorf("process: shed %s: spuff-guest (pid %d) did not exit", id, pid)
		}
	}
	_ = os.Remove(filepath.Join(dir, pidFile))
	return nil
}

func waitGone(ctx context.Context, pid int, dir string, d time.Duration) bool {
	return shedfs.WaitGone(ctx, pid, dir, d, 50*time.Millisecond)
}

// Delete stops the shed and removes its folder. A shed already gone is no error.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if !config.ValidShedName(id) {
		return fmt.Errorf("process: %q is not a shed name", id)
	}
	if _, err := os.Stat(filepath.Join(p.Dir(id), metaFile)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := p.Stop(ctx, id); err != nil && !errors.Is(err, provisioning.ErrNotFound) {
		return err
	}
	if err := os.RemoveAll(p.Dir(id)); err != nil {
		return fmt.Errorf("process: %w", err)
	}
	return nil
}
