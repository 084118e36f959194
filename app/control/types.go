package control

import (
	"time"

	"github.com/spuff-dev/spuff/app/broker"
)

// Status is GET /v1/status.
type Status struct {
	Version   string              `json:"version"`
	PID       int                 `json:"pid"`
	Started   time.Time           `json:"started"`
	Config    string              `json:"config"`
	AuditLog  string              `json:"audit_log"`
	Keychain  string              `json:"keychain,omitempty"`
	Sheds     []broker.ShedStatus `json:"sheds"`
	Helpers   map[string]any      `json:"helpers,omitempty"`
	Approvals *ApprovalsSummary   `json:"approvals,omitempty"`
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
