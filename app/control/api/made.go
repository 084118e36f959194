package api

import "time"

// UpRequest is the body of POST /v1/up. Provider "" means provision.provider.
type UpRequest struct {
	Name      string `json:"name"`
	Provider  string `json:"provider,omitempty"`
	NoConnect bool   `json:"no_connect,omitempty"`
	// IdleTimeoutSeconds is this shed's own idle timeout (0 = never); nil
	// follows sheds.NAME.idle_timeout and provision.idle_timeout.
	IdleTimeoutSeconds *int64 `json:"idle_timeout_seconds,omitempty"`
}

// ShedRequest is the body of POST /v1/down, /v1/start and /v1/stop.
type ShedRequest struct {
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"` // down only
}

// MadeShed is one shed spuff made, as GET /v1/made lists it: its state.db
// row joined with its provider's machine.
type MadeShed struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// StartStop says its provider keeps a stopped shed (a local VM), so
	// Stop and Start apply; any other shed is ended by Down.
	StartStop bool   `json:"start_stop,omitempty"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	Addr      string `json:"addr,omitempty"` // host:port of its sshd
	User      string `json:"user,omitempty"`
	// Alias names its host key in ~/.spuff/known_hosts (ssh -o HostKeyAlias).
	Alias   string    `json:"alias,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// Orphan is "no machine" (a row the provider does not know) or "no row"
	// (a labelled machine state.db does not know).
	Orphan string `json:"orphan,omitempty"`
	// IdleTimeoutSeconds is the idle timeout in force (0 = never) and
	// IdleLeftSeconds how long until the host ends the shed, for a ready
	// shed the host has asked; both are absent otherwise.
	IdleTimeoutSeconds *int64 `json:"idle_timeout_seconds,omitempty"`
	IdleLeftSeconds    *int64 `json:"idle_left_seconds,omitempty"`
}

// MadeList is GET /v1/made: the sheds and what could not be asked.
type MadeList struct {
	Sheds []MadeShed `json:"sheds"`
	Notes []string   `json:"notes,omitempty"`
}

// ProvisionStep is an EventProvision's step of up, down, start or stop.
type ProvisionStep struct {
	Step    string        `json:"step"`
	Elapsed time.Duration `json:"elapsed"`
	Error   string        `json:"error,omitempty"`
}
