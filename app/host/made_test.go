package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/provisioning"
)

// The Manager's lines land in the audit log as documented: ns provision,
// the op, the result and the detail, approval none.
func TestProvisionAuditLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var a provisioning.Auditor = provisionAudit{w}
	if err := a.Audit(context.Background(), provisioning.AuditLine{Shed: "demo", Op: provisioning.OpUp, Result: provisioning.ResultError, Detail: "qemu: booting: qemu exited"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(b))
	want := `"shed":"demo","ns":"provision","op":"up","result":"error","detail":"qemu: booting: qemu exited","approval":"none"}`
	if !strings.HasPrefix(line, `{"ts":"`) || !strings.HasSuffix(line, want) {
		t.Fatalf("audit line %s\nwant …%s", line, want)
	}
}
