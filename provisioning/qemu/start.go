package qemu

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spuff-dev/spuff/app/config"
)

// spec is everything one QEMU command line is built from.
type spec struct {
	Dir, Kernel, Initrd string
	Arch                string // amd64 | arm64
	Accel               string // kvm | hvf | tcg
	CPUs                int
	MemoryMiB           int64
	Port                int
}

// binary is the QEMU system emulator for a guest architecture.
func binary(arch string) string {
	if arch == "arm64" {
		return "qemu-system-aarch64"
	}
	return "qemu-system-x86_64"
}

// args builds QEMU's command line: direct kernel boot, virtio disks (the
// overlay and the read-only seed), user networking with the host's
// loopback port forwarded to the shed's sshd and without restrict=on (the
// shed reaches the host's services at 10.0.2.2), serial console to a file,
// QMP on a socket, and -daemonize so a failed start (a busy port) shows in
// the exit status.
func args(s spec) []string {
	machine, cpu, console := "q35", "qemu64", "ttyS0"
	accel := s.Accel
	if s.Arch == "arm64" {
		machine, cpu, console = "virt", "cortex-a72", "ttyAMA0"
	}
	if s.Accel == "tcg" {
		// A 256 MiB translation cache halves QEMU's RSS at no cost here.
		accel = "tcg,tb-size=256"
	} else {
		cpu = "host"
	}
	f := func(name string) string { return filepath.Join(s.Dir, name) }
	return []string{
		"-name", "spuff-" + filepath.Base(s.Dir),
		"-M", machine, "-accel", accel, "-cpu", cpu,
		"-smp", strconv.Itoa(s.CPUs), "-m", strconv.FormatInt(s.MemoryMiB, 10),
		"-nodefaults", "-no-user-config", "-vga", "none", "-display", "none", "-monitor", "none",
		"-serial", "file:" + f(consoleFile),
		"-kernel", s.Kernel, "-initrd", s.Initrd,
		"-append", "console=" + console + " root=/dev/vda rw",
		"-drive", "file=" + f(overlayFile) + ",if=none,id=root,format=qcow2,discard=unmap",
		"-device", "virtio-blk-pci,drive=root",
		"-drive", "file=" + f(seedFile) + ",if=none,id=seed,format=raw,readonly=on",
		"-device", "virtio-blk-pci,drive=seed",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", s.Port),
		"-device", "virtio-net-pci,netdev=n0",
		"-qmp", "unix:" + f(qmpFile) + ",server=on,wait=off",
		"-pidfile", f(pidFile),
		"-daemonize",
	}
}

// chooseAccel decides the accelerator from qemu.accel, what the host
// offers, and whether a KVM start hung before.
func chooseAccel(configured, offered string, kvmHung bool) string {
	switch configured {
	case "kvm", "hvf", "tcg":
		return configured
	}
	if offered == "" || (offered == "kvm" && kvmHung) {
		return "tcg"
	}
	return offered
}

// busyPort reports whether QEMU failed because the forwarded port was taken.
func busyPort(out []byte) bool {
	return bytes.Contains(out, []byte("Could not set up host forwarding rule"))
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before QEMU binds it; the caller retries on busyPort.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("qemu: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start boots the shed's QEMU: picks the accelerator and a free port
// (retrying when the port was taken), and, for KVM, falls back to TCG
// when the console stays silent.
func (p *Provider) start(ctx context.Context, name string, progress func(string)) error {
	say := func(s string) {
		if progress != nil {
			progress(s)
		}
	}
	dir := p.Dir(name)
	md, err := readMeta(dir)
	if err != nil {
		return fmt.Errorf("qemu: shed %s: %w", name, err)
	}
	mem, err := config.Bytes(p.cfg.Memory)
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	p.mu.Lock()
	accel := chooseAccel(p.cfg.Accel, hwAccel(), p.noKVM)
	p.mu.Unlock()
	s := spec{Dir: dir, Kernel: md.Kernel, Initrd: md.Initrd, Arch: md.Arch, Accel: accel, CPUs: p.cfg.CPUs, MemoryMiB: mem >> 20}
	for {
		say("starting QEMU (" + s.Accel + ")")
		if err := p.launch(ctx, &s); err != nil {
			return err
		}
		md.Port, md.Accel = s.Port, s.Accel
		if err := writeMeta(dir, md); err != nil {
			_ = p.kill(ctx, name)
			return err
		}
		if s.Accel != "kvm" || p.cfg.Accel == "kvm" {
			return nil
		}
		if consoleSpeaks(ctx, filepath.Join(dir, consoleFile), kvmProbeTimeout) {
			return nil
		}
		msg := fmt.Sprintf("KVM showed no console output in %s; falling back to TCG (software emulation, slower)", kvmProbeTimeout)
		p.log.Warn("qemu: "+msg, "shed", name)
		say(msg)
		if err := p.kill(ctx, name); err != nil {
			return err
		}
		p.mu.Lock()
		p.noKVM = true
		p.mu.Unlock()
		s.Accel = "tcg"
	}
}

// launch runs QEMU until it daemonizes, retrying with another port when the
// one it got was taken meanwhile.
func (p *Provider) launch(ctx context.Context, s *spec) error {
	_ = os.Remove(filepath.Join(s.Dir, consoleFile))
	// A pidfile a killed QEMU left says Failed until this QEMU writes its own.
	_ = os.Remove(filepath.Join(s.Dir, pidFile))
	var out []byte
	for range portAttempts {
		port, err := p.ports()
		if err != nil {
			return err
		}
		s.Port = port
		cmd := exec.CommandContext(ctx, binary(s.Arch), args(*s)...)
		out, err = cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		if !busyPort(out) {
			return fmt.Errorf("qemu: %s: %w: %s", binary(s.Arch), err, strings.TrimSpace(string(out)))
		}
		p.log.Info("qemu: forwarded port taken; retrying with another", "port", port)
	}
	return fmt.Errorf("qemu: no free port after %d tries: %s", portAttempts, strings.TrimSpace(string(out)))
}

// consoleSpeaks waits up to d for the serial console log to hold a byte.
func consoleSpeaks(ctx context.Context, path string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return false
}
