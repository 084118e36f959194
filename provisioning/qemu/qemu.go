// Package qemu runs sheds as local QEMU VMs: a qcow2 overlay per shed on a
// cached base image (provisioning/image), a NoCloud seed ISO, user-mode
// networking with a loopback port forwarded to the shed's sshd, and a QMP
// socket for a clean powerdown. Each shed's files live in
// Env.Home/sheds/NAME (0700); the machine ID is the shed's name.
package qemu

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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/image"
	"github.com/spuff-dev/spuff/provisioning/internal/shedfs"
)

// Files in a shed's folder.
const (
	metaFile    = "machine.json"
	overlayFile = "overlay.qcow2"
	seedFile    = "seed.iso"
	consoleFile = "console.log"
	qmpFile     = "qmp.sock"
	pidFile     = "qemu.pid"
)

// Timeouts. The KVM probe waits for the first console byte: a working KVM
// prints in well under a second, a nested KVM that hangs prints nothing.
var (
	kvmProbeTimeout  = 20 * time.Second
	powerdownTimeout = 60 * time.Second
	portAttempts     = 5
)

// Provider is the qemu provider.
type Provider struct {
	cfg    config.QEMU
	home   string
	images image.Cache
	log    *slog.Logger

	// ports picks the loopback port to forward (freePort; tests hand out
	// a taken one first).
	ports func() (int, error)

	mu    sync.Mutex
	noKVM bool // a KVM start hung once: use TCG from now on
}

var _ provisioning.Provider = (*Provider)(nil)

// New builds the provider from env.
func New(env provisioning.Env) (provisioning.Provider, error) {
	return newProvider(env)
}

func newProvider(env provisioning.Env) (*Provider, error) {
	if env.Home == "" || env.Cache == "" {
		return nil, errors.New("qemu: Env.Home and Env.Cache are required")
	}
	cfg := config.QEMU{Image: "debian-12", CPUs: 2, Memory: "2GiB", Disk: "20GiB", Accel: "auto"}
	if env.Config != nil {
		cfg = env.Config.QEMU
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{cfg: cfg, home: env.Home, images: image.Cache{Dir: filepath.Join(env.Cache, "images")}, log: log, ports: freePort}, nil
}

// Name is "qemu".
func (p *Provider) Name() string { return "qemu" }

// Capabilities: local, start/stop, and a private seed disk.
func (p *Provider) Capabilities() provisioning.Capabilities {
	return provisioning.Capabilities{StartStop: true, PrivateSeed: true, Local: true}
}

// meta is the shed folder's machine.json.
type meta struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Arch    string            `json:"arch"`
	Kernel  string            `json:"kernel"`
	Initrd  string            `json:"initrd"`
	Port    int               `json:"port,omitempty"`
	Accel   string            `json:"accel,omitempty"`
}

// Dir is the folder of a shed's files.
func (p *Provider) Dir(name string) string { return shedfs.Dir(p.home, name) }

// ConsoleLog is the path of a shed's serial console log, which the
// Manager may tail while cloud-init runs.
func (p *Provider) ConsoleLog(name string) string { return filepath.Join(p.Dir(name), consoleFile) }

// guestArch is the Debian name of the guest architecture: the host's.
func guestArch() string { return runtime.GOARCH }

func progress(req provisioning.CreateRequest, step string) {
	if req.Progress != nil {
		req.Progress(step)
	}
}

// Create makes the shed's folder, overlay and seed, then starts QEMU.
func (p *Provider) Create(ctx context.Context, req provisioning.CreateRequest) (provisioning.Machine, error) {
	if !config.ValidShedName(req.Name) {
		return provisioning.Machine{}, fmt.Errorf("qemu: %q is not a shed name", req.Name)
	}
	dir, err := shedfs.Make(p.home, req.Name)
	if err != nil {
		return provisioning.Machine{}, fmt.Errorf("qemu: %w", err)
	}
	m := provisioning.Machine{ID: req.Name, Name: req.Name, State: provisioning.Pending, Labels: req.Labels}
	fail := func(err error) (provisioning.Machine, error) {
		_ = p.Delete(context.WithoutCancel(ctx), req.Name)
		return m, err
	}
	progress(req, "preparing the "+p.cfg.Image+" base image")
	img, err := p.images.Ensure(ctx, p.cfg.Image, guestArch(), func(l string) {
		if s, ok := strings.CutPrefix(l, "step: "); ok {
			progress(req, "image: "+s)
		}
	})
	if err != nil {
		return fail(err)
	}
	progress(req, "creating the disk")
	size, err := config.Bytes(p.cfg.Disk)
	if err != nil {
		return fail(fmt.Errorf("qemu: %w", err))
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", img.Disk, "-F", img.DiskFormat,
		filepath.Join(dir, overlayFile), strconv.FormatInt(size, 10)).CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("qemu: qemu-img create: %w: %s", err, bytes.TrimSpace(out)))
	}
	progress(req, "writing the seed")
	if err := writeSeed(filepath.Join(dir, seedFile), seedFiles(req.Name, req.UserData, req.HostKey)); err != nil {
		return fail(err)
	}
	md := meta{Name: req.Name, Labels: req.Labels, Created: time.Now().UTC(), Arch: img.Arch, Kernel: img.Kernel, Initrd: img.Initrd}
	if err := writeMeta(dir, md); err != nil {
		return fail(err)
	}
	m.Created = md.Created
	if err := p.start(ctx, req.Name, req.Progress); err != nil {
		return fail(err)
	}
	return p.Get(ctx, req.Name)
}

func writeMeta(dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	tmp := filepath.Join(dir, metaFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, metaFile))
}

func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("qemu: %s: %w", filepath.Join(dir, metaFile), err)
	}
	return m, nil
}

// Get reports the shed from its folder and its QEMU process: Running only
// while the process named in the pidfile lives and is this shed's QEMU;
// Failed when the pidfile outlived its process. QEMU removes its pidfile
// when it exits (a powerdown, a poweroff in the shed), so a pidfile left
// behind means QEMU was killed or crashed: the shed did not stop, it died.
// A pidfile from before the host last booted is the exception: the
// restart ended QEMU, and the shed is as stopped as after a powerdown.
func (p *Provider) Get(_ context.Context, id string) (provisioning.Machine, error) {
	dir := p.Dir(id)
	md, err := readMeta(dir)
	if errors.Is(err, os.ErrNotExist) {
		return provisioning.Machine{}, fmt.Errorf("qemu: shed %s: %w", id, provisioning.ErrNotFound)
	}
	if err != nil {
		return provisioning.Machine{}, err
	}
	m := provisioning.Machine{ID: md.Name, Name: md.Name, Labels: md.Labels, Created: md.Created, State: provisioning.Stopped, Status: "stopped"}
	if pid := p.pid(id); pid > 0 {
		m.State, m.Status = provisioning.Running, "running ("+md.Accel+")"
		m.SSHAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(md.Port))
	} else if fi, err := os.Stat(filepath.Join(dir, pidFile)); err == nil && shedfs.PredatesBoot(fi) {
		m.Status = "stopped: your computer restarted while it ran; `spuff start " + id + "` boots it again"
	} else if err == nil {
		m.State, m.Status = provisioning.Failed, "QEMU ended without a clean shutdown (killed or crashed); `spuff start "+id+"` boots it again"
	}
	return m, nil
}

// pid is the live QEMU process of a shed, or 0. QEMU removes its pidfile
// on exit, which is what lets macOS (no /proc) trust it.
func (p *Provider) pid(name string) int { return shedfs.PID(p.Dir(name), pidFile) }

// List finds sheds by their folders' machine.json.
func (p *Provider) List(ctx context.Context) ([]provisioning.Machine, error) {
	ms, err := shedfs.List(ctx, p.home, p.Get)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	return ms, nil
}

// Start boots a stopped shed.
func (p *Provider) Start(ctx context.Context, id string) error {
	if _, err := p.Get(ctx, id); err != nil {
		return err
	}
	if p.pid(id) > 0 {
		return nil
	}
	return p.start(ctx, id, nil)
}

// Stop powers the shed down through QMP and kills QEMU if it has not gone
// after powerdownTimeout.
func (p *Provider) Stop(ctx context.Context, id string) error {
	if _, err := p.Get(ctx, id); err != nil {
		return err
	}
	pid := p.pid(id)
	if pid == 0 {
		return nil
	}
	if err := p.qmp(id, `{"execute":"system_powerdown"}`); err != nil {
		p.log.Warn("qemu: powerdown failed; killing", "shed", id, "err", err)
	} else if waitGone(ctx, pid, p.Dir(id), powerdownTimeout) {
		return nil
	}
	return p.kill(ctx, id)
}

func (p *Provider) qmp(id, cmd string) error {
	mon, err := qmp.NewSocketMonitor("unix", filepath.Join(p.Dir(id), qmpFile), 5*time.Second)
	if err != nil {
		return fmt.Errorf("qemu: qmp: %w", err)
	}
	if err := mon.Connect(); err != nil {
		return fmt.Errorf("qemu: qmp: %w", err)
	}
	defer mon.Disconnect()
	if _, err := mon.Run([]byte(cmd)); err != nil {
		return fmt.Errorf("qemu: qmp: %w", err)
	}
	return nil
}

// kill ends the shed's QEMU at once and waits for it to go.
func (p *Provider) kill(ctx context.Context, id string) error {
	pid := p.pid(id)
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if !waitGone(ctx, pid, p.Dir(id), 10*time.Second) {
		return fmt.Errorf("qemu: shed %s: QEMU (pid %d) did not exit after SIGKILL", id, pid)
	}
	_ = os.Remove(filepath.Join(p.Dir(id), pidFile))
	return nil
}

func waitGone(ctx context.Context, pid int, dir string, d time.Duration) bool {
	return shedfs.WaitGone(ctx, pid, dir, d, 100*time.Millisecond)
}

// Delete kills the shed's QEMU and removes its folder. A shed already
// gone is no error.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if !config.ValidShedName(id) {
		return fmt.Errorf("qemu: %q is not a shed name", id)
	}
	if err := p.kill(ctx, id); err != nil {
		return err
	}
	if err := os.RemoveAll(p.Dir(id)); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}
