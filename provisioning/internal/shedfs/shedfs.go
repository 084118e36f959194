// Package shedfs keeps the on-disk side that the local providers (qemu,
// process) share: a shed is a 0700 folder Env.Home/sheds/NAME, and its
// process is the pid in a pidfile there, trusted only while that process
// lives and names the folder on its command line, and only from a pidfile
// written since the host booted. Errors carry no provider prefix; each
// provider wraps them with its own.
package shedfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spuff-dev/spuff/provisioning"
)

// Dir is the folder of a shed's files under home.
func Dir(home, name string) string { return filepath.Join(home, "sheds", name) }

// Make creates the shed's folder (and home/sheds), both 0700. A folder
// already there is an error naming the shed: two sheds must not share one.
func Make(home, name string) (string, error) {
	dir := Dir(home, name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("shed %s: %w", name, err)
	}
	return dir, nil
}

// PID is the live process named in dir's pidfile, or 0. A pid whose
// command line does not name dir, or read from a pidfile older than this
// boot, is someone else's (a reused pid).
func PID(dir, pidFile string) int {
	path := filepath.Join(dir, pidFile)
	fi, err := os.Stat(path)
	if err != nil || PredatesBoot(fi) {
		return 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !Alive(pid, dir) {
		return 0
	}
	return pid
}

// PredatesBoot reports whether fi's file was last written before this
// host booted. A pidfile that old names a process of an earlier boot: its
// shed was stopped by the restart, not killed, and whatever holds that
// pid now is someone else's.
func PredatesBoot(fi fs.FileInfo) bool {
	booted, ok := bootTime()
	// Uptime is whole seconds, so a boot time can be up to a second late;
	// nothing writes a pidfile in its boot's first second.
	return ok && fi.ModTime().Before(booted.Add(-time.Second))
}

// Alive reports whether pid lives (not a zombie) and names dir on its
// command line.
func Alive(pid int, dir string) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	if zombie(pid) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		// No /proc (macOS): trust the pidfile, which each provider
		// removes (or has its process remove) when the process ends.
		return true
	}
	return bytes.Contains(cmdline, []byte(dir+"/"))
}

// zombie reports whether pid has ended and awaits its parent's wait:
// every thread of it, not only its first. A QEMU's main thread can be a
// zombie while its other threads still exit, and until the last has, the
// process's files stay open and its disk image stays locked.
func zombie(pid int) bool {
	// No /proc (macOS), or no such process: not a zombie.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || !statEnded(st) {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true // no thread list, or the process is already reaped
	}
	for _, task := range tasks {
		if !taskEnded(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name())) {
			return false
		}
	}
	return true
}

// taskEnded reports whether the stat file at path is a zombie's, or gone
// (a thread reaped since it was listed).
func taskEnded(path string) bool {
	st, err := os.ReadFile(path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
	}
	return statEnded(st)
}

// statEnded reads the state field of a /proc stat line: zombie or dead.
func statEnded(st []byte) bool {
	i := bytes.LastIndexByte(st, ')')
	return i > 0 && len(st) > i+2 && (st[i+2] == 'Z' || st[i+2] == 'X')
}

// WaitGone polls every `every` until pid is no longer dir's process, for
// at most d or until ctx ends, and reports whether it went.
//
// An exiting process has released its memory, and with it its command
// line, a while before it is a zombie (a killed QEMU frees gigabytes of
// guest RAM first), so an empty command line counts as dir's process
// still going.
func WaitGone(ctx context.Context, pid int, dir string, d, every time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if !aliveOrExiting(pid, dir) {
			return true
		}
		select {
		case <-ctx.Done():
			return !aliveOrExiting(pid, dir)
		case <-time.After(every):
		}
	}
	return !aliveOrExiting(pid, dir)
}

func aliveOrExiting(pid int, dir string) bool {
	if Alive(pid, dir) {
		return true
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(cmdline) == 0 && syscall.Kill(pid, 0) == nil && !zombie(pid)
}

// List asks get about each folder under home/sheds and keeps the spuff
// sheds among them. A folder get fails on is another provider's shed, or
// no shed; no home/sheds is no sheds.
func List(ctx context.Context, home string, get func(ctx context.Context, name string) (provisioning.Machine, error)) ([]provisioning.Machine, error) {
	ents, err := os.ReadDir(filepath.Join(home, "sheds"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ms []provisioning.Machine
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		m, err := get(ctx, e.Name())
		if err != nil {
			continue
		}
		if _, ok := m.Labels[provisioning.Label]; ok {
			ms = append(ms, m)
		}
	}
	return ms, nil
}
