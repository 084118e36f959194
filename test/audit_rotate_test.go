package test

import (
	"os"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/test/harness"
)

// TestAuditSurvivesRotation: after `rm` of the audit log, and after
// `mv log log.1` as logrotate does, spuff-app's next answer has its line at
// the path, after a line saying the log was reopened; when the path cannot
// be opened at all, requests are denied until it can.
func TestAuditSurvivesRotation(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	g := h.Guest(t, "rot")
	if err := guestPing(t, g); err != nil {
		t.Fatal(err)
	}
	reopened := func(r audit.Record) bool { return r.NS == audit.NSAudit && r.Op == audit.OpReopen }
	for name, rotate := range map[string]func() error{
		"rm": func() error { return os.Remove(h.AuditPath) },
		"mv": func() error { return os.Rename(h.AuditPath, h.AuditPath+".1") },
	} {
		if err := rotate(); err != nil {
			t.Fatal(err)
		}
		if err := guestPing(t, g); err != nil {
			t.Fatalf("ping after %s of the log: %v", name, err)
		}
		if n, r := len(h.FindAudit(t, pings("rot"))), len(h.FindAudit(t, reopened)); n != 1 || r != 1 {
			t.Fatalf("after %s the log holds %d ping and %d reopen lines, want 1 and 1", name, n, r)
		}
	}

	// A directory where the log should be: nothing can be audited, so
	// nothing is answered ok, until the path is usable again.
	if err := os.Remove(h.AuditPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.AuditPath, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		err := guestPing(t, g)
		if err == nil || !strings.Contains(err.Error(), "DENIED") {
			t.Fatalf("ping with no way to write the audit log: %v, want DENIED", err)
		}
	}
	if err := os.Remove(h.AuditPath); err != nil {
		t.Fatal(err)
	}
	if err := guestPing(t, g); err != nil {
		t.Fatalf("ping once the log can be reopened: %v", err)
	}
	if n := len(h.FindAudit(t, pings("rot"))); n != 1 {
		t.Fatalf("%d ping lines after recovery, want 1", n)
	}
	if !strings.Contains(h.Log(), "healthy again") {
		t.Fatalf("spuff-app did not log the recovery:\n%s", h.Log())
	}
}
