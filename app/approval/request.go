package approval

import (
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
)

// Methods name how a request was approved, as the audit field "approval" spells them.
const (
	MethodNone    = "none"
	MethodCached  = "cached"
	MethodTouchID = "touchid"
	MethodTray    = api.ViaTray
	MethodCLI     = api.ViaCLI
)

// Request is one question for the approver: who asks, for what.
type Request struct {
	ID      string // the bus request id
	Shed    string // from the connection, never from the message
	NS      string
	Op      string
	Class   string // one of helper.Class…; "" never asks
	Scope   string // sshsig namespace for helper.ClassSSHSign
	Subject string // key fingerprint, role ARN or registry: part of the coalescing key
	Prompt  string // for a human: "my-service wants to sign in to git@github.com with ssh-ed25519 SHA256:… (laptop)"
	Policy  config.Approval
}
