package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/daemon"
)

// openPty opens a real pseudo-terminal and returns its controlling side
// and the path of the terminal a login session would have.
func openPty(t *testing.T) (*os.File, string) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return ptmx, "/dev/pts/" + strconv.Itoa(n)
}

// TestNoticeReachesLoginTerminals: agent/notice writes the host's text to
// the user's login terminals as printable text (an escape sequence is
// defused), leaves the terminal's times as they were so the notice does
// not count as activity, skips what is not a terminal, and refuses an
// oversized text.
func TestNoticeReachesLoginTerminals(t *testing.T) {
	ptmx, pts := openPty(t)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(pts, old, old); err != nil {
		t.Fatal(err)
	}
	terms := t.TempDir()
	if err := os.Symlink(pts, filepath.Join(terms, "0")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(terms, "1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := runDir(t, "ntc")
	d := daemon.New(daemon.Options{RunDir: dir, SocketGID: -1, Terminals: terms})
	host := runAttached(t, d, dir, bus.HandlerFunc(func(context.Context, *bus.Request) (any, error) { return nil, nil }))

	var before bus.IdleResponse
	if err := host.Call(context.Background(), bus.NSAgent, bus.OpIdle, nil, &before); err != nil {
		t.Fatal(err)
	}
	var got bus.NoticeResponse
	if err := host.Call(context.Background(), bus.NSAgent, bus.OpNotice, bus.NoticeRequest{Text: "spuff: idle\x1b[2J\nsoon"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Terminals != 1 {
		t.Fatalf("shown on %d terminals, want 1", got.Terminals)
	}
	read := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 256)
		for !strings.Contains(string(all), "soon ***") {
			n, err := ptmx.Read(buf)
			if err != nil {
				break
			}
			all = append(all, buf[:n]...)
		}
		read <- string(all)
	}()
	select {
	case s := <-read:
		if !strings.Contains(s, "*** spuff: idle?[2J soon ***") || strings.Contains(s, "\x1b") {
			t.Errorf("the terminal showed %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the terminal")
	}
	if fi, err := os.Stat(pts); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("the terminal's mtime after the notice: %v %v, want %v", fi.ModTime(), err, old)
	}
	var after bus.IdleResponse
	if err := host.Call(context.Background(), bus.NSAgent, bus.OpIdle, nil, &after); err != nil {
		t.Fatal(err)
	}
	if !after.Since.Equal(before.Since) {
		t.Errorf("the notice moved the idle clock from %s to %s", before.Since, after.Since)
	}
	err := host.Call(context.Background(), bus.NSAgent, bus.OpNotice, bus.NoticeRequest{Text: strings.Repeat("x", bus.MaxNoticeText+1)}, nil)
	var be *bus.Error
	if !errors.As(err, &be) || be.Code != bus.CodeBadRequest {
		t.Errorf("an oversized notice: %v, want BAD_REQUEST", err)
	}
}
