package api

import "time"

// Event kinds. GET /v1/events streams every change as one Event per line, so
// clients redraw on events and never poll.
//
// To add a kind: a constant here and, when it carries more than Shed and
// State, one pointer field of its own on Event (as Approval is); clients
// skip kinds they do not know.
const (
	// EventOpen is the first line of every stream: the subscriptions are in
	// place, so state read after it is current and later changes will come.
	EventOpen     = "open"
	EventShed     = "shed"     // an attachment changed State (StateConnecting…, or "detached")
	EventRequest  = "request"  // a shed's request was answered: NS, Op, Result
	EventApproval = "approval" // a pending question or a grant changed: Approval
	// EventProvision is a step of a made shed's up/down/start/stop: State
	// is the row's lifecycle state, Provision the step.
	EventProvision = "provision"
	// EventIdle is the host's idle shutdown acting on a made shed: Idle
	// says what (a notice, its lifting, the stop or destroy).
	EventIdle = "idle"
)

// Event is one change.
type Event struct {
	Kind string    `json:"kind"`
	Shed string    `json:"shed"`
	Time time.Time `json:"time"`

	State string `json:"state,omitempty"` // EventShed

	NS     string `json:"ns,omitempty"`     // EventRequest
	Op     string `json:"op,omitempty"`     // EventRequest
	Result string `json:"result,omitempty"` // EventRequest: ok | denied | error

	Approval *ApprovalChange `json:"approval,omitempty"` // EventApproval

	Provision *ProvisionStep `json:"provision,omitempty"` // EventProvision

	Idle *IdleChange `json:"idle,omitempty"` // EventIdle
}

// Idle changes.
const (
	IdleNotice  = "notice"  // the shed ends in LeftSeconds unless it is used
	IdleCancel  = "cancel"  // activity lifted the notice
	IdleStop    = "stop"    // the host stopped the (local) shed
	IdleDestroy = "destroy" // the host destroyed the (cloud) shed
)

// IdleChange is an EventIdle's action. Action is what the end does ("stop"
// or "destroy"); Error says why an end failed.
type IdleChange struct {
	Change      string `json:"change"`
	IdleSeconds int64  `json:"idle_seconds"`
	LeftSeconds int64  `json:"left_seconds,omitempty"`
	Action      string `json:"action,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Approval changes.
const (
	ApprovalNew       = "new"       // a question opened: Pending holds it
	ApprovalWaiting   = "waiting"   // a request joined or left an open question: Pending holds it
	ApprovalAnswered  = "answered"  // a human (or spuff lock) answered: Allowed, Method
	ApprovalExpired   = "expired"   // nobody answered in time
	ApprovalWithdrawn = "withdrawn" // every request waiting on it gave up
	ApprovalRevoked   = "revoked"   // a grant was revoked (spuff approvals revoke, spuff lock)
)

// ApprovalChange is what changed in the approval queue or the grants.
type ApprovalChange struct {
	Change  string       `json:"change"`
	ID      string       `json:"id"` // the pending question's or the grant's id
	Allowed bool         `json:"allowed,omitempty"`
	Method  string       `json:"method,omitempty"` // touchid | tray | cli; "" for spuff lock
	Pending *PendingItem `json:"pending,omitempty"`
}
