package shedfs

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/provisioning"
)

// A pidfile is trusted only while its process names the shed's folder:
// a reused pid (here the test's own) is someone else's.
func TestPIDTrustsOnlyTheShedsOwnLiveProcess(t *testing.T) {
	home := t.TempDir()
	dir, err := Make(home, "box")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Make(home, "box"); err == nil {
		t.Fatal("made a shed folder twice")
	}
	if got := PID(dir, "x.pid"); got != 0 {
		t.Fatalf("PID without a pidfile = %d", got)
	}
	write := func(pid int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "x.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat("/proc/self/cmdline"); err == nil {
		write(os.Getpid())
		if got := PID(dir, "x.pid"); got != 0 {
			t.Fatalf("PID took a process not naming the folder: %d", got)
		}
	}
	// "; :" keeps sh from exec-ing sleep, so the folder stays on the command line.
	cmd := exec.Command("sh", "-c", "echo ready; sleep 30; :", filepath.Join(dir, "guest"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	// Start returns once the child has exec'd, before the kernel has set up
	// its command line; qemu writes its pidfile only after it runs, so wait
	// for the shell to speak, as the real pidfile's writer would have.
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	write(cmd.Process.Pid)
	if got := PID(dir, "x.pid"); got != cmd.Process.Pid {
		t.Fatalf("PID = %d, want the shed's process %d", got, cmd.Process.Pid)
	}
	// A pidfile last written before this host booted names a process of
	// an earlier boot, whatever now holds its pid: after a restart macOS
	// (no /proc) would otherwise take any live process for the shed's.
	pidPath := filepath.Join(dir, "x.pid")
	predates := func() bool {
		t.Helper()
		fi, err := os.Stat(pidPath)
		if err != nil {
			t.Fatal(err)
		}
		return PredatesBoot(fi)
	}
	if predates() {
		t.Fatal("a pidfile written just now predates the boot")
	}
	if booted, ok := bootTime(); ok {
		before := booted.Add(-time.Hour)
		if err := os.Chtimes(pidPath, before, before); err != nil {
			t.Fatal(err)
		}
		if !predates() {
			t.Fatalf("a pidfile from %v does not predate the boot at %v", before, booted)
		}
		if got := PID(dir, "x.pid"); got != 0 {
			t.Fatalf("PID trusted a pidfile from before the boot: %d", got)
		}
		write(cmd.Process.Pid)
	}
	if WaitGone(context.Background(), cmd.Process.Pid, dir, 200*time.Millisecond, 20*time.Millisecond) {
		t.Fatal("WaitGone said a live process went")
	}
	_ = cmd.Process.Kill()
	<-done
	if !WaitGone(context.Background(), cmd.Process.Pid, dir, 5*time.Second, 20*time.Millisecond) {
		t.Fatal("WaitGone missed a killed process")
	}
	if got := PID(dir, "x.pid"); got != 0 {
		t.Fatalf("PID of a dead process = %d", got)
	}
}

// A process that is exiting has released its memory, and with it its
// command line, some while before it is a zombie (a killed QEMU freeing
// gigabytes of guest RAM): WaitGone must not call it gone then. A kernel
// thread, whose command line is always empty, stands in for it.
func TestWaitGoneWaitsOutAnExitingProcess(t *testing.T) {
	cmdline, err := os.ReadFile("/proc/2/cmdline")
	if err != nil || len(cmdline) != 0 || syscall.Kill(2, 0) != nil {
		t.Skip("needs /proc and pid 2 as a kernel thread this user may signal")
	}
	if WaitGone(context.Background(), 2, t.TempDir(), 50*time.Millisecond, 10*time.Millisecond) {
		t.Fatal("WaitGone called a process without a command line gone")
	}
}

// List keeps the spuff sheds get knows and passes over the rest.
func TestListKeepsLabelledShedsGetKnows(t *testing.T) {
	home := t.TempDir()
	if ms, err := List(context.Background(), home, nil); err != nil || ms != nil {
		t.Fatalf("List without home/sheds = %v, %v", ms, err)
	}
	for _, n := range []string{"ours", "theirs", "unlabelled"} {
		if _, err := Make(home, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "sheds", "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ms, err := List(context.Background(), home, func(_ context.Context, name string) (provisioning.Machine, error) {
		switch name {
		case "ours":
			return provisioning.Machine{Name: name, Labels: map[string]string{provisioning.Label: "1"}}, nil
		case "unlabelled":
			return provisioning.Machine{Name: name}, nil
		case "file":
			t.Error("List asked about a file")
		}
		return provisioning.Machine{}, errors.New("not ours")
	})
	if err != nil || len(ms) != 1 || ms[0].Name != "ours" {
		t.Fatalf("List = %v, %v; want only ours", ms, err)
	}
}
