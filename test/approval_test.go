package test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/keychain/keychaintest"
	"github.com/spuff-dev/spuff/test/testenv"
)

func approvalConfig(policy, timeout string) string {
	return `approval:
  enabled: true
  policy: ` + policy + `
  session_ttl: 1h
  prompt_timeout: ` + timeout + `
  require:
    ssh_login: true
    ssh_sign: ["*"]
`
}

// startSSH runs ssh from the shed in the background; wait returns its result.
func (sh *sshShed) startSSH(t *testing.T) (wait func() (string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	args := append(sh.sshOpts(), "-p", sh.s.sshd.Port, "-l", sh.s.user, "127.0.0.1", "echo", "logged-in")
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "ssh"), args...)
	cmd.Env = sh.g.Env()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() (string, error) {
		defer cancel()
		err := cmd.Wait()
		return out.String(), err
	}
}

// waitPending waits for one pending approval from shed and returns it.
func waitPending(t *testing.T, s *sshHost, shed string) api.PendingItem {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out, err := s.h.Spuff(t, "pending", "--json")
		if err == nil {
			var items []api.PendingItem
			if json.Unmarshal([]byte(out), &items) == nil {
				for _, it := range items {
					if it.Shed == shed {
						return it
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no pending approval from %s\nspuff-app log:\n%s", shed, s.h.Log())
	return api.PendingItem{}
}

func loginSigns(shed string) func(audit.Record) bool {
	return func(r audit.Record) bool { return r.Shed == shed && r.NS == "ssh-agent" && r.Op == "sign" }
}

// TestApprovalTimeoutFailsCleanly: nobody answers, the prompt times out, the
// real ssh client fails without hanging and the denial is audited.
func TestApprovalTimeoutFailsCleanly(t *testing.T) {
	s := startSSHHostWith(t, approvalConfig("per-request", "2s"), nil)
	sh := s.shed(t, "unattended")
	start := time.Now()
	out, err := sh.ssh(t)
	if err == nil || strings.Contains(out, "logged-in") {
		t.Fatalf("ssh logged in with nobody approving: %s", out)
	}
	// Two allowlisted keys, each asked once with a 2s prompt: well under the
	// guest's 60s cap, and nothing hangs.
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("ssh took %s to fail", took)
	}
	var timeouts int
	for _, r := range s.h.FindAudit(t, loginSigns("unattended")) {
		if r.Result != "denied" || r.Code != "APPROVAL_TIMEOUT" {
			t.Fatalf("sign line %+v, want denied APPROVAL_TIMEOUT", r)
		}
		timeouts++
	}
	if timeouts == 0 {
		t.Fatalf("no APPROVAL_TIMEOUT line in the audit log:\n%+v", s.h.Audit(t))
	}
}

// TestApprovalByCLIAfterTenSeconds: the guest keeps waiting past its 3s
// deadline because the host sends progress, and `spuff approve` lets the
// real ssh log in.
func TestApprovalByCLIAfterTenSeconds(t *testing.T) {
	s := startSSHHostWith(t, approvalConfig("per-request", "30s"), nil)
	sh := s.shed(t, "patient")
	start := time.Now()
	wait := sh.startSSH(t)
	item := waitPending(t, s, "patient")
	if !strings.Contains(item.Prompt, "patient") || !strings.Contains(item.Prompt, s.laptop.FP) {
		t.Fatalf("the prompt does not say who asks for what: %q", item.Prompt)
	}
	time.Sleep(time.Until(start.Add(10 * time.Second)))
	s.h.MustSpuff(t, "approve", item.ID)
	out, err := wait()
	if err != nil || !strings.Contains(out, "logged-in") {
		t.Fatalf("ssh after approval: %v: %s\nguest log:\n%s", err, out, sh.g.Log())
	}
	if took := time.Since(start); took < 10*time.Second {
		t.Fatalf("ssh finished after %s, before the approval", took)
	}
	var cli bool
	for _, r := range s.h.FindAudit(t, loginSigns("patient")) {
		cli = cli || (r.Result == "ok" && r.Approval == "cli")
	}
	if !cli {
		t.Fatalf("no ok sign approved by cli in the audit log: %+v", s.h.FindAudit(t, loginSigns("patient")))
	}
	// A second login asks again (per-request remembers nothing); deny every
	// key ssh offers and it must give up.
	wait = sh.startSSH(t)
	done := make(chan error, 1)
	var out2 string
	go func() {
		var err error
		out2, err = wait()
		done <- err
	}()
	denied := 0
	for {
		select {
		case err := <-done:
			if err == nil || strings.Contains(out2, "logged-in") {
				t.Fatalf("ssh logged in after a deny: %s", out2)
			}
			if denied == 0 {
				t.Fatal("ssh failed before any prompt was denied")
			}
			return
		case <-time.After(100 * time.Millisecond):
			if out, err := s.h.Spuff(t, "pending", "--json"); err == nil {
				var items []api.PendingItem
				_ = json.Unmarshal([]byte(out), &items)
				for _, it := range items {
					if _, err := s.h.Spuff(t, "deny", it.ID); err == nil {
						denied++
					}
				}
			}
		}
	}
}

// TestApprovalGrantSurvivesRestart keeps a per-session grant in a real
// gnome-keyring (Secret Service on a private D-Bus), restarts the broker,
// and finds the grant still honoured; `spuff lock` then clears it.
func TestApprovalGrantSurvivesRestart(t *testing.T) {
	kr := keychaintest.SecretService(t)
	s := startSSHHostWith(t, approvalConfig("per-session", "20s"), map[string]string{"DBUS_SESSION_BUS_ADDRESS": kr.Addr})
	var st struct{ Keychain string }
	out := s.h.MustSpuff(t, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Keychain != "secret-service" {
		t.Fatalf("spuff-app keeps grants in %q, want the Secret Service (%v)", st.Keychain, err)
	}
	sh := s.shed(t, "keeper")
	wait := sh.startSSH(t)
	s.h.MustSpuff(t, "approve", waitPending(t, s, "keeper").ID)
	if out, err := wait(); err != nil {
		t.Fatalf("ssh after approval: %v: %s", err, out)
	}
	grants := func() []api.Grant {
		var g []api.Grant
		if err := json.Unmarshal([]byte(s.h.MustSpuff(t, "approvals", "--json")), &g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	if g := grants(); len(g) != 1 || g[0].Shed != "keeper" || g[0].Subject != s.laptop.FP {
		t.Fatalf("grants after approval: %+v", g)
	}

	s.h.Restart(t)
	// The broker remembers its sheds (state.db) and reconnects them.
	s.h.WaitState(t, "keeper", "connected")
	if out, err := sh.ssh(t); err != nil || !strings.Contains(out, "logged-in") {
		t.Fatalf("ssh after restart, with a grant: %v: %s\n%s", err, out, s.h.Log())
	}
	recs := s.h.FindAudit(t, loginSigns("keeper"))
	if last := recs[len(recs)-1]; last.Result != "ok" || last.Approval != "cached" {
		t.Fatalf("after restart the sign was %+v, want ok/cached", last)
	}

	s.h.MustSpuff(t, "lock")
	if g := grants(); len(g) != 0 {
		t.Fatalf("grants after lock: %+v", g)
	}
	s.h.Restart(t)
	if g := grants(); len(g) != 0 {
		t.Fatalf("grants came back after lock and restart: %+v", g)
	}
}

// TestApprovalWithNobodyToAsk: spuff-app --no-prompt denies at once, with
// a message that says why, instead of letting the shed wait for a timeout.
func TestApprovalWithNobodyToAsk(t *testing.T) {
	s := startSSHHostArgs(t, approvalConfig("per-request", "30s"), "--no-prompt")
	sh := s.shed(t, "unwatched")
	start := time.Now()
	out, err := sh.ssh(t)
	if err == nil || strings.Contains(out, "logged-in") {
		t.Fatalf("ssh logged in with nobody to approve: %s", out)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("denial took %s; with nobody to ask it must not wait for the 30s prompt", took)
	}
	recs := s.h.FindAudit(t, loginSigns("unwatched"))
	if len(recs) == 0 {
		t.Fatal("no sign line in the audit log")
	}
	for _, r := range recs {
		if r.Result != "denied" || r.Code != "DENIED" {
			t.Fatalf("sign line %+v, want denied/DENIED", r)
		}
	}
	if !strings.Contains(s.h.Log(), "nobody can be asked") {
		t.Fatalf("spuff-app did not say why it denied:\n%s", s.h.Log())
	}
}
