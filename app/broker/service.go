package broker

import (
	"context"
	"encoding/json"

	"github.com/spuff-dev/spuff/app/approval"
	"github.com/spuff-dev/spuff/app/config"
)

// Service is the host side of one namespace (ssh-agent, aws-credentials,
// docker-credentials). The broker runs every request through its pipeline
// and calls Describe, then (once allowed and approved) Serve.
type Service interface {
	// Describe reads the request without acting on it and says what it asks
	// for: the approval class and subject, the prompt, the audit detail.
	// A request it cannot read fails here (bus.Errorf(bus.CodeBadRequest, …)).
	Describe(ctx context.Context, r *Request) (*Action, error)
	// Serve acts on the request and returns the reply payload. It may refine
	// a.Detail (e.g. "expires:16:04"). Errors carry wire codes as *bus.Error.
	Serve(ctx context.Context, r *Request, a *Action) (any, error)
}

// Forgetter is implemented by services that keep per-shed state, dropped
// when the shed is detached.
type Forgetter interface {
	Forget(shed string)
}

// Request is a guest request as a service sees it. Shed comes from the
// session the host dialed; nothing in Payload can change it.
type Request struct {
	ID      string
	Shed    string
	NS      string
	Op      string
	Payload json.RawMessage
	Config  *config.Shed // the shed's effective configuration
}

// Action is what a request asks for.
type Action struct {
	Class   string // approval class (approval.Class…); "" never asks
	Scope   string // sshsig namespace for approval.ClassSSHSign
	Subject string // key fingerprint, role ARN, registry
	Prompt  string // human text for an approval prompt
	Detail  string // audit detail; never secret
}

// Approver asks a human, or a cache of earlier answers, whether a request may
// go ahead. It returns the audit method (approval.Method…) or an error with a
// wire code (DENIED, APPROVAL_TIMEOUT).
type Approver interface {
	Approve(ctx context.Context, q *approval.Request) (method string, err error)
}

var _ Approver = (*approval.Approver)(nil)

// Policy may refuse a request before approval (e.g. a key outside the shed's
// allowlist is refused by the service itself; this hook is for host-wide rules).
type Policy interface {
	Check(ctx context.Context, r *Request, a *Action) error
}
