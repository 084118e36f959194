package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sshCommandRunning reports whether an ssh session without a terminal
// (`spuff ssh NAME -- CMD`, an editor's remote server) is running a command
// in the shed, by the process table under proc (/proc). Such a session
// leaves no terminal to watch, yet someone is at work. The bus's own
// session, whose command is spuff-guest bus-stdio, does not count.
func sshCommandRunning(proc string) bool {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return false
	}
	sessions := map[int]bool{}
	parent := map[int]int{}
	type process struct {
		comm string
		ppid int
	}
	var ps []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "PID (COMM) STATE PPID …"; COMM may hold spaces and parentheses.
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(stat[end+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		ps = append(ps, process{comm: string(stat[open+1 : end]), ppid: ppid})
		parent[pid] = ppid
		cmd, _ := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		// sshd's setproctitle writes the title NUL-padded over argv.
		title, _, _ := strings.Cut(string(cmd), "\x00")
		title = strings.TrimRight(title, " ")
		// OpenSSH titles a session's unprivileged process
		// "sshd: USER@notty" ("sshd-session: …" from 9.8).
		if (strings.HasPrefix(title, "sshd: ") || strings.HasPrefix(title, "sshd-session: ")) && strings.HasSuffix(title, "@notty") {
			sessions[pid] = true
		}
	}
	// Each session's descendants: a session whose tree holds spuff-guest
	// is the bus's (its shell may or may not exec the command).
	busy, bus := map[int]bool{}, map[int]bool{}
	for _, p := range ps {
		for pp, hops := p.ppid, 0; pp > 1 && hops < 64; hops++ {
			if sessions[pp] {
				busy[pp] = true
				if p.comm == "spuff-guest" {
					bus[pp] = true
				}
				break
			}
			next, ok := parent[pp]
			if !ok {
				break
			}
			pp = next
		}
	}
	for pid := range busy {
		if !bus[pid] {
			return true
		}
	}
	return false
}

// sessionActivity is the newest login-session activity: a command running
// over ssh is activity now; otherwise the terminals under dir tell.
func sessionActivity(proc, dir string) time.Time {
	if sshCommandRunning(proc) {
		return time.Now()
	}
	return ttyActivity(dir)
}

// tellTerminals writes text to each login-session terminal under dir that
// this user owns (the shed's user runs the guest) and says on how many it
// was shown. Each terminal's times are put back as they were: the idle
// clock reads them, and a notice is not activity.
func tellTerminals(dir, text string) int {
	entries, _ := os.ReadDir(dir)
	shown := 0
	for _, e := range entries {
		if e.Name() == "ptmx" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || int(st.Uid) != os.Getuid() {
			continue
		}
		// O_NOCTTY: a daemon must never acquire a user's terminal;
		// O_NONBLOCK: a terminal stopped with ^S must not hang it.
		f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if _, err := f.WriteString(text); err == nil {
			shown++
		}
		f.Close()
		_ = os.Chtimes(p, time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()))
	}
	return shown
}

// ttyActivity is the newest use of a login session's terminal under dir
// (/dev/pts): typing updates its access time and output its modification
// time, which is how w(1) tells a session's idle time.
func ttyActivity(dir string) time.Time {
	var newest time.Time
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() == "ptmx" {
			continue // the multiplexer, not a session
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, e.Name()), &st) != nil {
			continue
		}
		for _, ts := range []syscall.Timespec{st.Atim, st.Mtim} {
			if t := time.Unix(ts.Unix()); t.After(newest) {
				newest = t
			}
		}
	}
	return newest
}
