package approval

import (
	"slices"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// Policies, as config spells them.
const (
	PolicyNone       = "none"        // never ask
	PolicyPerRequest = "per-request" // ask every time
	PolicyPerSession = "per-session" // one yes covers the same shed, class, scope and subject for the TTL
	PolicyPerShed    = "per-shed"    // one yes covers the whole shed for that class for the TTL
)

// Defaults where config leaves a value unset.
const (
	DefaultPolicy        = PolicyPerSession
	DefaultSessionTTL    = 4 * time.Hour
	DefaultPromptTimeout = 30 * time.Second
)

// rule is the resolved policy for one request.
type rule struct {
	policy  string
	ttl     time.Duration
	timeout time.Duration
}

func (r rule) caches() bool { return r.policy == PolicyPerSession || r.policy == PolicyPerShed }

// resolve decides whether a request of class/scope must be approved under p
// and how. ask=false means it goes ahead (MethodNone).
func resolve(p config.Approval, class, scope string) (r rule, ask bool, err error) {
	if class == "" || !p.Enabled {
		return rule{}, false, nil
	}
	switch class {
	case helper.ClassSSHLogin:
		ask = p.Require.SSHLogin
	case helper.ClassSSHSign:
		ask = slices.Contains(p.Require.SSHSign, "*") || slices.Contains(p.Require.SSHSign, scope)
	case helper.ClassAWS:
		ask = p.Require.AWS
	case helper.ClassDocker:
		ask = p.Require.Docker
	default:
		// A class this package does not know is a bug upstream; refusing is
		// safer than letting it through unasked.
		return rule{}, false, bus.Errorf(bus.CodeInternal, "approval: unknown operation class %q", class)
	}
	r = rule{policy: p.Policy, ttl: p.SessionTTL, timeout: p.PromptTimeout}
	switch r.policy {
	case "":
		r.policy = DefaultPolicy
	case PolicyNone:
		return rule{}, false, nil
	case PolicyPerRequest, PolicyPerSession, PolicyPerShed:
	default:
		// Config validation should have caught it; asking every time is the
		// reading that can never grant more than the user meant.
		r.policy = PolicyPerRequest
	}
	if r.ttl <= 0 {
		r.ttl = DefaultSessionTTL
	}
	if r.timeout <= 0 {
		r.timeout = DefaultPromptTimeout
	}
	return r, ask, nil
}
