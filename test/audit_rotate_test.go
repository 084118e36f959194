package test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control/api"
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
	// The failure is told where a developer looks: status, doctor (which
	// fails) and the status API the tray reads.
	if out := h.MustSpuff(t, "status"); !strings.Contains(out, "audit:     FAILING since") || !strings.Contains(out, "every request is denied") {
		t.Fatalf("spuff status while the log fails:\n%s", out)
	}
	if out, err := h.Spuff(t, "doctor"); err == nil || !strings.Contains(out+err.Error(), "audit log failing since") {
		t.Fatalf("spuff doctor while the log fails: %v\n%s", err, out)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(h.MustSpuff(t, "status", "--json")), &st); err != nil || !st.Audit.Failing() {
		t.Fatalf("status --json while the log fails: %+v, %v", st.Audit, err)
	}
	if err := os.Remove(h.AuditPath); err != nil {
		t.Fatal(err)
	}
	if err := guestPing(t, g); err != nil {
		t.Fatalf("ping once the log can be reopened: %v", err)
	}
	if out := h.MustSpuff(t, "status"); !strings.Contains(out, "audit:     healthy (durability batch)") {
		t.Fatalf("spuff status once the log heals:\n%s", out)
	}
	if n := len(h.FindAudit(t, pings("rot"))); n != 1 {
		t.Fatalf("%d ping lines after recovery, want 1", n)
	}
	if !h.LogShows("healthy again") {
		t.Fatalf("spuff-app did not log the recovery:\n%s", h.Log())
	}
}
