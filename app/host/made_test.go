package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
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

// TestUpTakesTheShedsOwnProvider: `spuff up NAME` with no --provider makes
// the shed with sheds.NAME.provider, as the config documents, and a shed
// with no section of its own gets provision.provider; --provider wins.
func TestUpTakesTheShedsOwnProvider(t *testing.T) {
	cfg := config.Default()
	cfg.Provision.Provider = "nowhere" // the default, which only demo overrides
	cfg.Sheds = map[string]config.ShedOverride{"demo": {Provider: "local-test"}}
	md, _, _ := testMade(t, cfg)
	ctx := context.Background()
	s, err := md.Up(ctx, api.UpRequest{Name: "demo", NoConnect: true})
	if err != nil {
		t.Fatalf("up of a shed whose section names its provider: %v", err)
	}
	if s.Provider != "local-test" {
		t.Errorf("demo was made by %q, want its own provider local-test", s.Provider)
	}
	if _, err := md.Up(ctx, api.UpRequest{Name: "other", NoConnect: true}); err == nil || !strings.Contains(err.Error(), `"nowhere"`) {
		t.Errorf("up of a shed with no section: %v, want provision.provider's refusal", err)
	}
	if _, err := md.Up(ctx, api.UpRequest{Name: "third", Provider: "local-test", NoConnect: true}); err != nil {
		t.Errorf("up with --provider: %v", err)
	}
}
