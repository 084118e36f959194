package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcessStopEndsTheWholeGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The child ignores nothing and holds the output pipe open: Stop must
	// still return, and must end it along with its parent.
	p, err := StartProcess("sh", exec.Command("sh", "-c", "sleep 300 & echo $! >"+pidFile+"; echo started; wait"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(10*time.Second, func() bool { return strings.Contains(p.Log(), "started") }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the child %d outlived Stop", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Stop() // a second Stop is a no-op
}

func TestProcessWaitReadyReportsAnEarlyExit(t *testing.T) {
	p, err := StartProcess("sh", exec.Command("sh", "-c", "echo cannot bind; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(10*time.Second, func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "cannot bind") {
		t.Fatalf("WaitReady = %v, want an early-exit error carrying the output", err)
	}
}

func TestProcessWaitReadyTimesOut(t *testing.T) {
	p := MustStartProcess(t, "sleep", exec.Command("sleep", "300"))
	err := p.WaitReady(100*time.Millisecond, func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "not ready within") {
		t.Fatalf("WaitReady = %v, want a timeout", err)
	}
}

// alive reports whether pid runs: a zombie waiting for a reaper that may be
// slow (or absent, as PID 1 in some containers) has ended.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
