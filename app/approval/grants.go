package approval

import (
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/app/keychain"
)

// storeKey is the keychain item holding every grant as one JSON document.
const storeKey = "approval-grants"

// grant is a remembered yes: requests it covers are approved as "cached"
// until it expires or is revoked.
type grant struct {
	api.Grant

	// mono is the monotonic reading matching Granted. In-process expiry is
	// measured on it, so setting the wall clock back extends nothing.
	mono time.Duration
}

type grantFile struct {
	V      int         `json:"v"`
	Grants []api.Grant `json:"grants"`
}

// covers reports whether g answers q under rule r.
func (g *grant) covers(q *Request, r rule) bool {
	if g.Policy != r.policy || g.Shed != q.Shed || g.Class != q.Class {
		return false
	}
	if r.policy == PolicyPerShed {
		return true
	}
	return g.Scope == q.Scope && g.Subject == q.Subject
}

// live reports whether g is still valid now. Both clocks must agree, and a
// TTL shortened in config since the grant applies at once.
func (g *grant) live(wall time.Time, mono time.Duration, ttl time.Duration) bool {
	life := g.Expires.Sub(g.Granted)
	if ttl > 0 {
		life = min(life, ttl)
	}
	return mono-g.mono < life && wall.Before(g.Granted.Add(life))
}

// grantedLocked finds a live grant covering q, dropping expired ones.
func (a *Approver) grantedLocked(q *Request, r rule) bool {
	wall, mono := a.wall(), a.mono()
	for _, g := range a.grants {
		if g.covers(q, r) && g.live(wall, mono, r.ttl) {
			return true
		}
	}
	return false
}

// addGrantLocked records a yes for the requests f stands for.
func (a *Approver) addGrantLocked(f *flight, method string) {
	wall, mono := a.wall(), a.mono()
	g := grant{Grant: api.Grant{
		ID: a.newIDLocked(), Shed: f.q.Shed, Class: f.q.Class, Policy: f.rule.policy,
		Method: method, Prompt: f.item.Prompt,
		Granted: wall, Expires: wall.Add(f.rule.ttl),
	}, mono: mono}
	if f.rule.policy == PolicyPerSession {
		g.Scope, g.Subject = f.q.Scope, f.q.Subject
	}
	// One grant per thing covered: a fresh yes replaces an older one.
	a.grants = slices.DeleteFunc(a.grants, func(o *grant) bool {
		return o.Policy == g.Policy && o.Shed == g.Shed && o.Class == g.Class && o.Scope == g.Scope && o.Subject == g.Subject
	})
	a.grants = append(a.grants, &g)
	a.log.Info("approval: granted", "grant", g.ID, "shed", g.Shed, "class", g.Class, "scope", g.Scope,
		"subject", g.Subject, "policy", g.Policy, "method", method, "expires", g.Expires.Format(time.RFC3339))
}

// pruneLocked drops grants that expired on either clock.
func (a *Approver) pruneLocked() {
	wall, mono := a.wall(), a.mono()
	a.grants = slices.DeleteFunc(a.grants, func(g *grant) bool { return !g.live(wall, mono, 0) })
}

// Grants lists the live grants, oldest first.
func (a *Approver) Grants() []api.Grant {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneLocked()
	out := make([]api.Grant, 0, len(a.grants))
	for _, g := range a.grants {
		out = append(out, g.Grant)
	}
	slices.SortFunc(out, func(x, y api.Grant) int { return cmp.Compare(x.Granted.UnixNano(), y.Granted.UnixNano()) })
	return out
}

// Revoke forgets one grant; the next request it covered asks again.
func (a *Approver) Revoke(id string) error {
	a.mu.Lock()
	var shed string
	found := false
	a.grants = slices.DeleteFunc(a.grants, func(g *grant) bool {
		if g.ID == id {
			shed, found = g.Shed, true
		}
		return g.ID == id
	})
	a.mu.Unlock()
	if !found {
		return ErrUnknown
	}
	a.log.Info("approval: grant revoked", "grant", id)
	a.persist()
	a.notify(api.ApprovalChange{Change: api.ApprovalRevoked, ID: id}, shed)
	return nil
}

// load reads the grants a previous run left in the store. Anything it cannot
// read is dropped: a lost grant costs one more prompt, a wrong one costs more.
func (a *Approver) load() {
	if a.store == nil {
		return
	}
	b, err := a.store.Get(storeKey)
	if errors.Is(err, keychain.ErrNotFound) {
		return
	}
	if err != nil {
		a.log.Warn("approval: cannot read saved grants; starting without them", "err", err)
		return
	}
	var f grantFile
	if err := json.Unmarshal(b, &f); err != nil || f.V != 1 {
		a.log.Warn("approval: saved grants are unreadable; starting without them", "err", err, "version", f.V)
		return
	}
	wall, mono := a.wall(), a.mono()
	for i := range f.Grants {
		g := grant{Grant: f.Grants[i]}
		ok := g.ID != "" && g.Shed != "" && g.Class != "" && g.Expires.After(g.Granted) &&
			(g.Policy == PolicyPerSession || g.Policy == PolicyPerShed)
		// A grant from the future means the wall clock went back since it
		// was made; its age is unknowable, so it is not trusted.
		if !ok || g.Granted.After(wall) {
			continue
		}
		g.mono = mono - wall.Sub(g.Granted)
		if g.live(wall, mono, 0) {
			a.grants = append(a.grants, &g)
		}
	}
	if len(a.grants) > 0 {
		a.log.Info("approval: restored grants", "count", len(a.grants))
	}
}

// persist writes the current grants. Writes are serialised and each takes
// its snapshot after the previous one finished, so the last write is the
// latest state.
func (a *Approver) persist() {
	if a.store == nil {
		return
	}
	a.pmu.Lock()
	defer a.pmu.Unlock()
	a.mu.Lock()
	a.pruneLocked()
	f := grantFile{V: 1, Grants: make([]api.Grant, 0, len(a.grants))}
	for _, g := range a.grants {
		f.Grants = append(f.Grants, g.Grant)
	}
	a.mu.Unlock()
	b, err := json.Marshal(f)
	if err == nil {
		err = a.store.Set(storeKey, b)
	}
	if err == nil {
		return
	}
	// Better to lose every saved grant than to let a revoked one come back
	// after a restart.
	if derr := a.store.Delete(storeKey); derr != nil {
		a.log.Error("approval: cannot save or clear grants; a restart may restore revoked ones", "err", err, "clear_err", derr)
		return
	}
	a.log.Warn("approval: cannot save grants; they last until spuff-app stops", "err", err)
}
