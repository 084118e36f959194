package shedfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// leaderExitsEnv makes this test binary a process whose first thread
// ends while its others live on, as a QEMU's main thread can end while
// its vCPU threads are still exiting (and hold its files and locks).
const leaderExitsEnv = "SPUFF_SHEDFS_LEADER_EXITS"

func init() {
	if os.Getenv(leaderExitsEnv) == "" {
		return
	}
	// init runs on the main thread: SYS_EXIT ends that thread alone. The
	// runtime's other threads keep the process.
	syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
}

// A process whose main thread is a zombie while its other threads still
// run has not gone: its files (a disk image's lock) are still open.
func TestWaitGoneWaitsForEveryThread(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leaderExitsEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper's main thread did not end")
		}
	}
	if tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); len(tasks) < 2 {
		t.Fatalf("the helper has %d threads, want its main one and others", len(tasks))
	}
	if WaitGone(context.Background(), pid, t.TempDir(), 200*time.Millisecond, 20*time.Millisecond) {
		t.Fatal("WaitGone called a process gone whose threads still run")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !WaitGone(context.Background(), pid, t.TempDir(), 5*time.Second, 20*time.Millisecond) {
		t.Fatal("WaitGone missed the process's end")
	}
}
