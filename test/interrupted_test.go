package test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/provisioning/state"
	"github.com/spuff-dev/spuff/test/harness"
)

// TestRestartFailsWhatACrashLeftMidStep: spuff-app is killed while a
// shed's bootstrap runs (the row written as it would be then). The next
// spuff-app says in `spuff list` that it was interrupted and what to run,
// instead of showing it bootstrapping for good; a shed at rest is as it was.
func TestRestartFailsWhatACrashLeftMidStep(t *testing.T) {
	h := harness.Start(t, harness.Options{Env: map[string]string{"HCLOUD_TOKEN": ""}})
	h.Kill(t)
	<-h.Exited()
	db, err := state.Open(filepath.Join(h.Home, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]string{"box": state.Bootstrapping, "calm": state.Ready} {
		row := state.Shed{Name: name, Provider: "hetzner", ProviderID: "4" + name, State: st, SSHAddr: "192.0.2.1:22", User: "dev", HostKeyAlias: "spuff-" + name}
		if err := db.CreateShed(context.Background(), row); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	h.Restart(t)

	var list []struct {
		Name string
		Made *struct{ State, Reason string }
	}
	out := h.MustSpuff(t, "list", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	for _, l := range list {
		switch {
		case l.Made == nil:
			t.Errorf("%s is not listed as made:\n%s", l.Name, out)
		case l.Name == "box" && (l.Made.State != state.Failed || !strings.Contains(l.Made.Reason, "spuff-app stopped while it was bootstrapping") ||
			!strings.Contains(l.Made.Reason, "spuff down box")):
			t.Errorf("the interrupted shed: %+v, want failed, saying why and what to run", l.Made)
		case l.Name == "calm" && l.Made.State != state.Ready:
			t.Errorf("the shed at rest: %+v, want ready", l.Made)
		}
	}
	// The up the crash cut short gets its line, after the fact.
	if got := h.FindAudit(t, func(r audit.Record) bool {
		return r.NS == "provision" && r.Shed == "box" && r.Op == "up" && r.Result == "error" && strings.Contains(r.Detail, "spuff-app stopped while it was bootstrapping")
	}); len(got) != 1 {
		t.Errorf("%d audit lines for the interrupted up, want 1: %+v", len(got), h.Audit(t))
	}
	if got := h.FindAudit(t, func(r audit.Record) bool { return r.Shed == "calm" }); len(got) != 0 {
		t.Errorf("the shed at rest got audit lines: %+v", got)
	}
	if !h.LogShows("left mid-step by an earlier spuff-app") {
		t.Errorf("spuff-app's log does not say it marked the shed:\n%s", h.Log())
	}
}
