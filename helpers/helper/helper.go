// Package helper is the contract between the broker and the credential
// helpers (sshkeys, awssts, dockercreds): what a helper implements, what a
// request looks like to it, and what it says a request asks for. A helper
// imports this package, guest/bus and app/config, and nothing else of app/
// (test/layering_test.go keeps it so).
//
// A new namespace goes in these places, and no others:
//
//   - guest/bus: its NS constant, in Namespaces and IsNamespace (config's
//     defaults and validation, the broker's admission and the guest's relay
//     read that list), its ops and payload types in payload.go.
//   - helpers/NAME: a Service (and a Forgetter if it keeps per-shed state)
//     that decodes with bus.DecodePayload, names an approval Class here if
//     its requests may ask a human, and has a FuzzXxx for what it decodes.
//   - app/config: its section, defaults and validation, if it has settings.
//   - app/host/services.go: one entry in the map of services.
//   - guest/guestcmd/frontends.go: its daemon.Frontend, the namespace's face
//     in the shed (a socket, an endpoint, or guest.sock for one-shot tools).
//
// A new provider is one folder, provisioning/NAME, whose init calls
// provisioning.Register, and one blank import in app/host/providers.go.
package helper

import (
	"context"
	"encoding/json"

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
	// The broker passes the Action that Describe returned for r.
	Serve(ctx context.Context, r *Request, a *Action) (any, error)
}

// Forgetter is implemented by services that keep per-shed state, dropped
// when the shed is detached.
type Forgetter interface {
	Forget(shed string)
}

// Request is a guest request as a service sees it. Shed comes from the
// attachment the host dialed; nothing in Payload can change it.
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
	Class   string // approval class (Class…); "" never asks
	Scope   string // sshsig namespace for ClassSSHSign
	Subject string // key fingerprint, role ARN, registry
	Prompt  string // human text for an approval prompt
	Detail  string // audit detail; never secret

	// Parsed is the service's own reading of the request, which Describe
	// may leave here so that Serve does not decode the payload again. Only
	// the service reads it; Serve decodes afresh when it is nil (an Action
	// built elsewhere, as in tests).
	Parsed any
}

// Approval classes: what kind of thing a request asks for, as config's
// approval.require spells them.
const (
	ClassSSHLogin = "ssh_login" // an SSH userauth signature
	ClassSSHSign  = "ssh_sign"  // an sshsig signature; Scope is its namespace ("git")
	ClassAWS      = "aws"       // AWS credentials on a host cache miss
	ClassDocker   = "docker"    // a docker registry get
)
