package approval

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/keychain"
	"github.com/spuff-dev/spuff/app/keychain/keychaintest"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// restarted is an Approver as a fresh spuff-app builds it on the same store.
// Nobody can be asked, so anything not covered by a saved grant is denied
// at once instead of waiting.
func restarted(clk *clock, s keychain.Store) *Approver {
	return New(Options{Store: s, NoPrompter: true, Now: clk.Now, Monotonic: clk.Mono})
}

// persistence: a per-session grant given through `spuff approve` survives a
// restart, expires on time across one, is not trusted from the future, and
// Lock clears it for good.
func persistence(t *testing.T, open func() keychain.Store) {
	clk := newClock()
	cfg := policy(PolicyPerSession) // TTL 1h
	q := req("dev", helper.ClassSSHLogin, "", "SHA256:k", cfg)
	ctx := context.Background()

	a1 := newApprover(t, clk, open())
	ch := approveAsync(ctx, a1, q)
	item := waitPending(t, a1, 1)
	if err := a1.Decide(item.ID, true, MethodCLI); err != nil {
		t.Fatal(err)
	}
	if r := get(t, ch); r.err != nil || r.method != MethodCLI {
		t.Fatalf("first approval = %+v", r)
	}

	clk.Advance(30 * time.Minute)
	a2 := restarted(clk, open())
	if m, err := a2.Approve(ctx, q); err != nil || m != MethodCached {
		t.Fatalf("after restart = %q, %v; want cached", m, err)
	}
	gs := a2.Grants()
	if len(gs) != 1 || gs[0].Method != MethodCLI || gs[0].Subject != "SHA256:k" || gs[0].Policy != PolicyPerSession {
		t.Fatalf("restored grants = %+v", gs)
	}
	// Another subject was never granted.
	if _, err := a2.Approve(ctx, req("dev", helper.ClassSSHLogin, "", "SHA256:other", cfg)); bus.CodeOf(err) != bus.CodeDenied {
		t.Fatalf("ungranted subject after restart = %v", err)
	}

	// Restarting later than the expiry restores nothing.
	late := newClock()
	late.SetWall(clk.Now().Add(31 * time.Minute))
	if gs := restarted(late, open()).Grants(); len(gs) != 0 {
		t.Fatalf("expired grants restored: %+v", gs)
	}
	// Restarting with the wall clock set before the grant restores nothing
	// either: the grant's age cannot be known.
	back := newClock()
	back.SetWall(clk.Now().Add(-time.Hour))
	if gs := restarted(back, open()).Grants(); len(gs) != 0 {
		t.Fatalf("grant from the future restored: %+v", gs)
	}
	// A restored grant keeps measuring on the monotonic clock.
	a3 := restarted(clk, open())
	clk.Advance(31 * time.Minute)
	clk.SetWall(clk.Now().Add(-3 * time.Hour))
	if _, err := a3.Approve(ctx, q); bus.CodeOf(err) != bus.CodeDenied {
		t.Fatalf("restored grant outlived its TTL with the wall clock set back: %v", err)
	}

	// Lock clears the store, not only memory.
	clk = newClock()
	clk.Advance(30 * time.Minute)
	a4 := restarted(clk, open())
	if len(a4.Grants()) != 1 {
		t.Fatalf("grants before Lock = %+v", a4.Grants())
	}
	if n := a4.Lock(); n != 1 {
		t.Fatalf("Lock = %d, want 1", n)
	}
	a5 := restarted(clk, open())
	if gs := a5.Grants(); len(gs) != 0 {
		t.Fatalf("grants after Lock and restart = %+v", gs)
	}
	if _, err := a5.Approve(ctx, q); bus.CodeOf(err) != bus.CodeDenied {
		t.Fatalf("after Lock and restart = %v, want a new question (denied: nobody to ask)", err)
	}
	b, err := open().Get(storeKey)
	if err == nil {
		var f grantFile
		if err := json.Unmarshal(b, &f); err != nil || len(f.Grants) != 0 {
			t.Fatalf("store after Lock = %d grants, %v", len(f.Grants), err)
		}
	} else if !errors.Is(err, keychain.ErrNotFound) {
		t.Fatal(err)
	}
}

func TestPersistenceFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keychain")
	persistence(t, func() keychain.Store {
		s, err := keychain.NewFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPersistenceSecretService(t *testing.T) {
	d := keychaintest.SecretService(t)
	persistence(t, func() keychain.Store {
		// A new connection each time, as a new process would make.
		s, err := keychain.NewSecretService(d.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// What cannot be read is dropped, never trusted.
func TestLoadRejectsBadGrants(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	good := api.Grant{ID: "g1", Shed: "dev", Class: helper.ClassAWS, Policy: PolicyPerShed, Method: MethodCLI, Granted: now.Add(-time.Minute), Expires: now.Add(time.Hour)}
	bad := []api.Grant{
		{ID: "", Shed: "dev", Class: helper.ClassAWS, Policy: PolicyPerShed, Granted: good.Granted, Expires: good.Expires},
		{ID: "b2", Shed: "dev", Class: helper.ClassAWS, Policy: PolicyPerRequest, Granted: good.Granted, Expires: good.Expires},
		{ID: "b3", Shed: "dev", Class: helper.ClassAWS, Policy: PolicyPerShed, Granted: good.Granted, Expires: good.Granted},
		{ID: "b4", Shed: "", Class: helper.ClassAWS, Policy: PolicyPerShed, Granted: good.Granted, Expires: good.Expires},
	}
	s := keychain.NewMemory()
	b, _ := json.Marshal(grantFile{V: 1, Grants: append(bad, good)})
	s.Set(storeKey, b)
	if gs := restarted(clk, s).Grants(); len(gs) != 1 || gs[0].ID != "g1" {
		t.Fatalf("loaded %+v, want only g1", gs)
	}
	for _, junk := range []string{"", "{", `{"v":2,"grants":[]}`, `[]`, `{"v":1,"grants":{}}`} {
		s.Set(storeKey, []byte(junk))
		if gs := restarted(clk, s).Grants(); len(gs) != 0 {
			t.Fatalf("%q loaded %+v", junk, gs)
		}
	}
}
