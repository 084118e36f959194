package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestFullDiskDeniesEverything puts the audit log on a real 64 KiB tmpfs,
// fills it, and checks that the broker then answers nothing "ok": a request
// whose line cannot be written is denied, and every pong the shed got has
// its line.
func TestFullDiskDeniesEverything(t *testing.T) {
	data := harness.ShortTempDir(t)
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		testenv.Missing(t, "a tmpfs mount", err.Error()+"; needs root")
	}
	t.Cleanup(func() { _ = syscall.Unmount(data, syscall.MNT_DETACH) })

	h := harness.Start(t, harness.Options{Env: map[string]string{"XDG_DATA_HOME": data}})
	h.AuditPath = filepath.Join(data, "shed", "extensions-audit.log")
	g := h.Guest(t, "disk")
	if err := guestPing(t, g); err != nil {
		t.Fatalf("ping with room on disk: %v", err)
	}

	filler := filepath.Join(data, "filler")
	out, err := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k", "count=64").CombinedOutput()
	if err == nil {
		t.Fatalf("dd filled 256 KiB into a 64 KiB tmpfs: %s", out)
	}
	// The log's last page still has room; pings go on being answered (and
	// logged) until a line needs a block the disk no longer has.
	answered, denied := 1, 0
	for range 200 {
		err := guestPing(t, g)
		if err == nil {
			if denied > 0 {
				t.Fatal("a ping was answered after the audit log had failed, with the disk still full")
			}
			answered++
			continue
		}
		if !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "audit") {
			t.Fatalf("a ping on a full disk failed with %v; want DENIED naming the audit log", err)
		}
		if denied++; denied == 3 {
			break
		}
	}
	if denied == 0 {
		t.Fatal("200 pings were answered on a full 64 KiB disk")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := guestPing(t, g); err != nil {
		t.Fatalf("ping after the disk has room again: %v", err)
	}
	oks := 0
	for _, r := range h.FindAudit(t, pings("disk")) {
		if r.Result != "ok" {
			t.Fatalf("unexpected line %+v", r)
		}
		oks++
	}
	if oks != answered+1 {
		t.Fatalf("%d ok ping lines for %d answered pings: an answer went out without its line", oks, answered+1)
	}
	if !h.LogShows("audit log failing; every request is denied") {
		t.Fatalf("spuff-app did not log the audit failure:\n%s", h.Log())
	}
}
