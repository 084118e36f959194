package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a peer program a test runs (spuff-app, sshd, minio…) in a
// process group of its own, so that stopping it also stops whatever it
// spawned: sshd's session children, an agent's helpers.
type Process struct {
	name   string
	cmd    *exec.Cmd
	log    *Buffer
	exited chan struct{}
}

// StartProcess starts cmd in a new process group. Output goes where
// cmd.Stdout and cmd.Stderr point; when both are nil it is kept for Log.
func StartProcess(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{name: name, cmd: cmd, exited: make(chan struct{})}
	if cmd.Stdout == nil && cmd.Stderr == nil {
		p.log = &Buffer{}
		cmd.Stdout, cmd.Stderr = p.log, p.log
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// A grandchild that outlives the group keeps the output pipe open;
	// without a bound, Wait (and so Stop) would hang on it.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// MustStartProcess is StartProcess that ends the test on error and stops
// the process at cleanup.
func MustStartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p, err := StartProcess(name, cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// WaitReady polls ready until it reports true. It fails early, with the
// process's output, if the process exits first.
func (p *Process) WaitReady(timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start:\n%s", p.name, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within %s:\n%s", p.name, timeout, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Dialable reports whether something accepts connections at addr.
func Dialable(network, addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}

// Stop sends SIGTERM to the process group and, after 5s, SIGKILL. It
// returns once the process has exited; calling it again does nothing.
func (p *Process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.Kill()
	}
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// PID is the process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Log is what the process printed so far, when StartProcess kept it.
func (p *Process) Log() string {
	if p.log == nil {
		return ""
	}
	return p.log.String()
}

// RSS returns the process's resident set size in bytes (Linux /proc), or 0
// when it cannot be read.
func (p *Process) RSS() int64 { return RSSOf(p.cmd.Process.Pid) }

// RSSParts splits RSS into anonymous pages (Go heap, stacks, runtime
// metadata) and file-backed ones (the executable's text, rodata and pclntab
// it has touched, and any shared library).
func (p *Process) RSSParts() (anon, file int64) {
	st := procStatus(p.cmd.Process.Pid)
	return st["RssAnon"], st["RssFile"]
}

// RSSOf returns pid's resident set size in bytes (Linux /proc), or 0.
func RSSOf(pid int) int64 { return procStatus(pid)["VmRSS"] }

// procStatus reads the kB figures of /proc/PID/status, in bytes.
func procStatus(pid int) map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, rest, ok := strings.Cut(line, ":")
		rest = strings.TrimSpace(rest)
		if !ok || !strings.HasSuffix(rest, " kB") {
			continue
		}
		var kb int64
		if _, err := fmt.Sscanf(rest, "%d kB", &kb); err == nil {
			out[k] = kb << 10
		}
	}
	return out
}
