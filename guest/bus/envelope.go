// Package bus is the wire between a shed and the host: length-prefixed JSON
// frames carrying envelopes, a multiplexed Conn, and the transports the host
// dials. It is the only guest package the host imports, so it imports nothing
// else of this repository.
package bus

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Version is the protocol version exchanged in hello.
const Version = 1

// Envelope types.
const (
	TypeRequest  = "request"
	TypeResponse = "response"
	TypeProgress = "progress"
	TypePing     = "ping"
	TypePong     = "pong"
)

// Namespaces. A new credential namespace is one constant here, one entry in
// Namespaces, a helper under helpers/ and a daemon.Frontend in the guest.
const (
	NSSSHAgent = "ssh-agent"
	NSAWS      = "aws-credentials"
	NSDocker   = "docker-credentials"
	NSAgent    = "agent" // host→guest, plus the guest's ping; never a credential
)

// Namespaces lists the credential namespaces a shed may ask the host for, in
// the order config and docs name them. Config's defaults and validation, the
// broker's admission, and the guest's relay all read this one list.
func Namespaces() []string { return []string{NSSSHAgent, NSAWS, NSDocker} }

// IsNamespace reports whether ns is one of Namespaces.
func IsNamespace(ns string) bool {
	switch ns {
	case NSSSHAgent, NSAWS, NSDocker:
		return true
	}
	return false
}

// Error codes carried on the wire.
const (
	CodeKeyNotFound     = "KEY_NOT_FOUND"
	CodeDenied          = "DENIED"
	CodeReplayed        = "REPLAYED"
	CodeRateLimited     = "RATE_LIMITED"
	CodeNotAllowed      = "NOT_ALLOWED"
	CodeApprovalTimeout = "APPROVAL_TIMEOUT"
	CodeHostUnreachable = "HOST_UNREACHABLE"
	CodeBadRequest      = "BAD_REQUEST"
	CodeUpstream        = "UPSTREAM_FAILED"
	CodeInternal        = "INTERNAL"
)

// HostUnreachable is what a shed's user is told, by every face of the shed,
// when the host does not answer (HOST_UNREACHABLE).
const HostUnreachable = "spuff is not running on your computer — start it from the menu bar or with `spuff-app --headless`, then retry"

// Unreachable is the HOST_UNREACHABLE error for a call that got no answer
// because of err, with the advice.
func Unreachable(err error) *Error {
	return Errorf(CodeHostUnreachable, "no answer from your computer (%v); %s", err, HostUnreachable)
}

// Envelope is one message on the bus. Unknown fields are ignored on decode so
// that a field a guest invents (a "shed" name, say) never means anything.
type Envelope struct {
	V       int             `json:"v"`
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	NS      string          `json:"ns,omitempty"`
	Op      string          `json:"op,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Error is a failure carried in a response. It is also a Go error so that a
// handler's error code survives the trip to the caller.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds a wire error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the wire code of err, INTERNAL when it carries none, and ""
// for a nil error.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var be *Error
	if errors.As(err, &be) {
		return be.Code
	}
	return CodeInternal
}

// NewID returns a fresh UUIDv7 request id.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// IDTime checks that id is a UUIDv7 and returns the time it carries.
func IDTime(id string) (time.Time, error) {
	if len(id) != 36 {
		return time.Time{}, fmt.Errorf("bus: id %.40q is not a UUID", id)
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return time.Time{}, fmt.Errorf("bus: id %.40q is not a UUID: %w", id, err)
	}
	if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		return time.Time{}, fmt.Errorf("bus: id %q is a version %d UUID, want 7", id, u.Version())
	}
	var b [8]byte
	copy(b[2:], u[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:]))), nil
}

// validate checks the parts of an envelope that every type needs.
func (e *Envelope) validate() error {
	if e.V != Version {
		return fmt.Errorf("bus: envelope version %d, want %d", e.V, Version)
	}
	if e.ID == "" || len(e.ID) > 64 {
		return errors.New("bus: envelope id missing or longer than 64 bytes")
	}
	switch e.Type {
	case TypeRequest:
		if e.NS == "" || e.Op == "" {
			return errors.New("bus: request without ns or op")
		}
	case TypeResponse, TypeProgress, TypePing, TypePong:
	default:
		return fmt.Errorf("bus: unknown envelope type %.20q", e.Type)
	}
	return nil
}
