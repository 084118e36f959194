package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestTTYActivity: the newest access or modification of a session's
// terminal counts; the multiplexer and a dir without terminals do not.
func TestTTYActivity(t *testing.T) {
	dir := t.TempDir()
	if got := ttyActivity(dir); !got.IsZero() {
		t.Fatalf("no terminals: %s", got)
	}
	base := time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)
	set := func(name string, atime, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, atime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	set("0", base, base.Add(time.Minute))   // output a minute later
	set("1", base.Add(2*time.Minute), base) // typed into two minutes later
	set("ptmx", base.Add(time.Hour), base.Add(time.Hour))
	if got := ttyActivity(dir); !got.Equal(base.Add(2 * time.Minute)) {
		t.Fatalf("newest activity %s, want %s", got, base.Add(2*time.Minute))
	}
}

// TestSSHCommandRunning: a terminal-less ssh session running a command is
// activity; the bus's own session (spuff-guest bus-stdio, exec'd or under
// a shell), a session with nothing under it and a terminal session (its
// terminal tells) are not.
func TestSSHCommandRunning(t *testing.T) {
	type proc struct {
		pid, ppid   int
		comm, title string
	}
	sshd := proc{1000, 1, "sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}
	priv := func(pid int) proc { return proc{pid, 1000, "sshd", "sshd: dev [priv]"} }
	for _, c := range []struct {
		name  string
		procs []proc
		want  bool
	}{
		{"a command", []proc{sshd, priv(1100), {1101, 1100, "sshd", "sshd: dev@notty"}, {1102, 1101, "make", "make -j2"}}, true},
		{"a command, OpenSSH 9.8", []proc{sshd, priv(1100), {1101, 1100, "sshd-session", "sshd-session: dev@notty"}, {1102, 1101, "bash", "bash -c sleep 100; :"}, {1103, 1102, "sleep", "sleep 100"}}, true},
		{"the bus", []proc{sshd, priv(1100), {1101, 1100, "sshd", "sshd: dev@notty"}, {1102, 1101, "spuff-guest", "spuff-guest bus-stdio"}}, false},
		{"the bus under a shell", []proc{sshd, priv(1100), {1101, 1100, "sshd", "sshd: dev@notty"}, {1102, 1101, "bash", "bash -c spuff-guest bus-stdio"}, {1103, 1102, "spuff-guest", "spuff-guest bus-stdio"}}, false},
		{"a session ending", []proc{sshd, priv(1100), {1101, 1100, "sshd", "sshd: dev@notty"}}, false},
		{"a terminal", []proc{sshd, priv(1100), {1101, 1100, "sshd", "sshd: dev@pts/0"}, {1102, 1101, "bash", "-bash"}}, false},
		{"the bus and a command", []proc{sshd, priv(1100), {1101, 1100, "sshd", "sshd: dev@notty"}, {1102, 1101, "spuff-guest", "spuff-guest bus-stdio"},
			priv(1200), {1201, 1200, "sshd", "sshd: dev@notty"}, {1202, 1201, "cargo", "cargo build"}}, true},
		{"a comm with parentheses", []proc{sshd, priv(1100), {1101, 1100, "sshd", "sshd: dev@notty"}, {1102, 1101, "a) b (c", "x"}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, p := range c.procs {
				d := filepath.Join(dir, strconv.Itoa(p.pid))
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				stat := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560", p.pid, p.comm, p.ppid, p.pid, p.pid)
				if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "cmdline"), []byte(p.title+"\x00\x00"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := sshCommandRunning(dir); got != c.want {
				t.Errorf("sshCommandRunning %v, want %v", got, c.want)
			}
		})
	}
}

// TestSSHCommandRunningInTheRealProcessTable: a process titled as an ssh
// session's, with a command under it, is found in this machine's /proc.
func TestSSHCommandRunningInTheRealProcessTable(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// argv[0] is the title OpenSSH gives a session; ": " keeps sh from
	// exec'ing sleep, so sleep is its child.
	cmd := &exec.Cmd{Path: sh, Args: []string{"sshd: spuff-test@notty", "-c", "sleep 30; :"}, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The group, so sleep goes with its shell.
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); !sshCommandRunning("/proc"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session's command was not found in /proc")
		}
	}
	if got := sessionActivity("/proc", t.TempDir()); time.Since(got) > time.Second {
		t.Errorf("session activity %s, want now", got)
	}
}
