package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// TestMain lets the test binary be the writer that TestKillLosesNoAnsweredLine kills.
func TestMain(m *testing.M) {
	if p := os.Getenv("SPUFF_AUDIT_KILL_CHILD"); p != "" {
		killChild(p, Durability(os.Getenv("SPUFF_AUDIT_KILL_MODE")))
		return
	}
	os.Exit(m.Run())
}

// killChild writes lines from 8 goroutines and, like the broker's reply,
// reports each on stdout only once its Write has returned. It runs until killed.
func killChild(path string, mode Durability) {
	w, err := OpenWith(path, Options{Durability: mode})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%d-%d", g, i)
				if err := w.Write(context.Background(), Record{Shed: "k", NS: "agent", Op: "ping", Result: ResultOK, ID: id}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				os.Stdout.WriteString(id + "\n")
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKillLosesNoAnsweredLine kills -9 a process writing the log at full
// speed, in both modes: every line it reported as written is in the file.
func TestKillLosesNoAnsweredLine(t *testing.T) {
	for _, mode := range []Durability{Batch, Fsync} {
		t.Run(string(mode), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.log")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SPUFF_AUDIT_KILL_CHILD="+p, "SPUFF_AUDIT_KILL_MODE="+string(mode))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			answered := map[string]bool{}
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				answered[sc.Text()] = true
				if len(answered) == 2000 {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					break
				}
			}
			// What was reported before the kill landed counts too.
			for sc.Scan() {
				answered[sc.Text()] = true
			}
			_ = cmd.Wait()
			if len(answered) < 2000 {
				t.Fatalf("the writer stopped after %d lines: %v", len(answered), cmd.ProcessState)
			}
			inLog := map[string]bool{}
			for _, r := range readLines(t, p) {
				inLog[r.ID] = true
			}
			for id := range answered {
				if !inLog[id] {
					t.Fatalf("line %s was reported written but is not in the log after kill -9 (%d reported, %d in the log)", id, len(answered), len(inLog))
				}
			}
			t.Logf("%s: %d lines reported, %d in the log", mode, len(answered), len(inLog))
		})
	}
}
