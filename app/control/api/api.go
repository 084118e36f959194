// Package api is the control API's vocabulary: the types spuff-app's local
// API sends and takes, and nothing else. The spuff CLI and the tray import
// it and the client; the server side (broker, approver) fills it in, so
// neither client links what serves it.
package api

import (
	"errors"
	"time"
)

// Attachment states: how the broker's connection to a shed stands.
const (
	StateConnecting   = "connecting"
	StateConnected    = "connected"
	StateDisconnected = "disconnected"
	StateDetached     = "detached" // in events only: the shed was detached
)

// Attachment is one attached shed, as GET /v1/sheds lists it.
type Attachment struct {
	Name         string    `json:"name"`
	URL          string    `json:"url"`
	State        string    `json:"state"`
	Since        time.Time `json:"since"`
	GuestVersion string    `json:"guest_version,omitempty"`
	Namespaces   []string  `json:"namespaces,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	Requests     int64     `json:"requests"`
	Denied       int64     `json:"denied"`
	Errors       int64     `json:"errors"`
}

// Status is GET /v1/status.
type Status struct {
	Version   string            `json:"version"`
	PID       int               `json:"pid"`
	Started   time.Time         `json:"started"`
	Config    string            `json:"config"` // the config file spuff-app loaded
	AuditLog  string            `json:"audit_log"`
	Audit     *AuditHealth      `json:"audit,omitempty"`
	Fence     *FenceHealth      `json:"replay_fence,omitempty"`
	Keychain  string            `json:"keychain,omitempty"`
	Sheds     []Attachment      `json:"sheds"`
	Helpers   Helpers           `json:"helpers"`
	Approvals *ApprovalsSummary `json:"approvals,omitempty"`
}

// AuditHealth is the audit log's health. Error is empty while lines are
// written; otherwise every request has been denied since Since.
type AuditHealth struct {
	Durability string    `json:"durability"`
	Error      string    `json:"error,omitempty"`
	Since      time.Time `json:"since,omitzero"`
}

// Failing reports whether the log is failing (every request denied).
func (a *AuditHealth) Failing() bool { return a != nil && a.Error != "" }

// FenceHealth is the replay fence's health: the file where the host keeps
// each shed's mark past the ids it accepted dated ahead of the host clock.
// Error is empty while marks are written; otherwise requests that need a
// new mark have been refused since Since.
type FenceHealth struct {
	Path  string    `json:"path"`
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// Failing reports whether the fence is failing (requests dated ahead of
// the host clock refused).
func (f *FenceHealth) Failing() bool { return f != nil && f.Error != "" }

// Helpers is what the credential helpers report of themselves, by namespace.
type Helpers struct {
	SSH *SSHStatus `json:"ssh-agent,omitempty"`
	AWS *AWSStats  `json:"aws-credentials,omitempty"`
}

// SSHStatus says where the host's SSH keys come from: the one identity that
// signs for sheds and logs in to them.
type SSHStatus struct {
	Mode    string       `json:"mode"` // agent-forward | local-keys (auto resolved)
	Skipped []SkippedKey `json:"skipped"`
	// Agent is the agent socket spuff-app signs and logs in with in
	// agent-forward mode, so `spuff ssh-config` names the same one.
	Agent string `json:"agent,omitempty"`
}

// SkippedKey is a key file of ~/.ssh that local-keys mode does not use, and why.
type SkippedKey struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// AWSStats counts the AWS helper's work.
type AWSStats struct {
	AssumeRoleCalls  int64 `json:"assume_role_calls"`  // AssumeRole requests sent to STS
	AssumeRoleErrors int64 `json:"assume_role_errors"` // of which failed
	CacheHits        int64 `json:"cache_hits"`         // retrievals answered from the cache
	CacheMisses      int64 `json:"cache_misses"`       // retrievals that waited for an AssumeRole
	Sessions         int   `json:"sessions"`           // sessions held now
}

// ApprovalsSummary counts pending prompts and live grants.
type ApprovalsSummary struct {
	Pending int `json:"pending"`
	Grants  int `json:"grants"`
}

// AttachRequest is POST /v1/sheds.
type AttachRequest struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// ErrorBody is every non-2xx answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// LockResult is POST /v1/lock's answer.
type LockResult struct {
	Revoked int `json:"revoked"`
}

// Who answers a pending request through the API (…/approve?via=): the
// approval methods the audit line records for the tray and the CLI.
const (
	ViaTray = "tray"
	ViaCLI  = "cli"
)

// PendingItem is one open question, as `spuff pending` and the tray show it.
type PendingItem struct {
	ID      string    `json:"id"`
	Shed    string    `json:"shed"`
	NS      string    `json:"ns"`
	Op      string    `json:"op"`
	Class   string    `json:"class"`
	Scope   string    `json:"scope,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Policy  string    `json:"policy"`
	Prompt  string    `json:"prompt"`
	Waiting int       `json:"waiting"` // requests sharing this question
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"` // when it times out unanswered
}

// Grant is a remembered yes: requests it covers are approved as "cached"
// until it expires or is revoked.
type Grant struct {
	ID      string    `json:"id"`
	Shed    string    `json:"shed"`
	Class   string    `json:"class"`
	Scope   string    `json:"scope,omitempty"`   // per-session only: sshsig namespace
	Subject string    `json:"subject,omitempty"` // per-session only: key fingerprint, role, registry
	Policy  string    `json:"policy"`            // per-session | per-shed
	Method  string    `json:"method"`            // who said yes: touchid | tray | cli
	Prompt  string    `json:"prompt,omitempty"`  // what they were shown
	Granted time.Time `json:"granted"`
	Expires time.Time `json:"expires"`
}

// ErrUnknown is answered (404) for an id that names no pending request or
// grant: it may have been answered, timed out or expired meanwhile.
var ErrUnknown = errors.New("approval: no such request or grant")
