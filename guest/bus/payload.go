package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// Operations.
const (
	OpHello   = "hello"   // agent, host→guest
	OpPing    = "ping"    // agent, either direction (guest→host is audited)
	OpStatus  = "status"  // agent, host→guest
	OpMetrics = "metrics" // agent, host→guest
	OpIdle    = "idle"    // agent, host→guest
	OpNotice  = "notice"  // agent, host→guest: a message for the shed's logged-in users

	OpList      = "list"      // ssh-agent, docker-credentials
	OpSign      = "sign"      // ssh-agent
	OpExtension = "extension" // ssh-agent

	// The shed's agent is read-only; it sends these so that a refused write
	// is audited on the host, which always answers NOT_ALLOWED. The payload
	// of add and remove is an SSHKey holding the public key only.
	OpAdd       = "add"        // ssh-agent, always refused
	OpRemove    = "remove"     // ssh-agent, always refused
	OpRemoveAll = "remove_all" // ssh-agent, always refused
	OpLock      = "lock"       // ssh-agent, always refused
	OpUnlock    = "unlock"     // ssh-agent, always refused

	OpGetCredentials = "get_credentials" // aws-credentials

	OpGet   = "get"   // docker-credentials
	OpStore = "store" // docker-credentials, always refused
	OpErase = "erase" // docker-credentials, always refused
)

// ExtSessionBind is OpenSSH's session-bind agent extension, the only one the
// shed's agent forwards: other extensions could mean anything to the host's.
const ExtSessionBind = "session-bind@openssh.com"

// SSHReadOnly is what a shed user is told when they try to change the keys.
const SSHReadOnly = "the spuff agent is read-only: keys live on your computer; add them there"

// DecodePayload decodes a request payload into v strictly: no unknown
// field, nothing after the value. A failure is BAD_REQUEST naming ns, so the
// guest learns what it sent wrong and the host never guesses.
func DecodePayload(ns string, p json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadRequest, "%s payload: %v", ns, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(CodeBadRequest, "%s payload: trailing data", ns)
	}
	return nil
}

// HelloRequest is sent by the host right after it connects.
type HelloRequest struct {
	Version int `json:"version"`
}

// HelloResponse is the guest's answer: its protocol version and what it serves.
type HelloResponse struct {
	Version      int      `json:"version"`
	GuestVersion string   `json:"guest_version,omitempty"`
	Namespaces   []string `json:"namespaces"`
}

// PingResponse answers an agent ping.
type PingResponse struct {
	Time time.Time `json:"time"`
}

// IdleResponse answers agent/idle: how long the shed has been idle, by its
// one idle clock (the newest of login-session activity, credential requests
// and heartbeats). The host's idle shutdown acts on it.
type IdleResponse struct {
	Seconds int64     `json:"seconds"`
	Since   time.Time `json:"since"`
}

// MaxNoticeText bounds a NoticeRequest's text, in bytes.
const MaxNoticeText = 512

// NoticeRequest is a message the host wants the shed's logged-in users to
// see (agent/notice), such as the idle notice before the host ends the
// shed. The guest shows it on each of its user's terminals as printable
// text only.
type NoticeRequest struct {
	Text string `json:"text"`
}

// NoticeResponse says on how many terminals the notice was shown.
type NoticeResponse struct {
	Terminals int `json:"terminals"`
}

// SSHKey is a public key as the agent protocol carries it.
type SSHKey struct {
	Blob    []byte `json:"blob"`
	Comment string `json:"comment,omitempty"`
}

// SSHListResponse answers ssh-agent list.
type SSHListResponse struct {
	Keys []SSHKey `json:"keys"`
}

// SSHSignRequest asks the host to sign Data with the key whose wire blob is Key.
// AgentConn numbers the guest-side agent connection, so that a session-bind
// recorded on that connection can be matched to the signs that follow it.
type SSHSignRequest struct {
	Key       []byte `json:"key"`
	Data      []byte `json:"data"`
	Flags     uint32 `json:"flags,omitempty"`
	AgentConn uint64 `json:"agent_conn,omitempty"`
}

// SSHSignResponse is a signature.
type SSHSignResponse struct {
	Format string `json:"format"`
	Blob   []byte `json:"blob"`
	Rest   []byte `json:"rest,omitempty"`
}

// SSHExtensionRequest forwards an agent extension (session-bind@openssh.com).
type SSHExtensionRequest struct {
	Type      string `json:"type"`
	Contents  []byte `json:"contents,omitempty"`
	AgentConn uint64 `json:"agent_conn,omitempty"`
}

// SSHExtensionResponse is the extension's reply.
type SSHExtensionResponse struct {
	Contents []byte `json:"contents,omitempty"`
}

// AWSCredentials are short-lived session credentials. The request has no
// payload: the role is the host's choice.
type AWSCredentials struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expiration      time.Time `json:"expiration"`
}

// DockerGetRequest asks for the credentials of one registry.
type DockerGetRequest struct {
	ServerURL string `json:"server_url"`
}

// DockerGetResponse carries a username and secret (password or identity token).
type DockerGetResponse struct {
	Username string `json:"username"`
	Secret   string `json:"secret"`
}

// DockerListResponse maps registry server URLs to usernames.
type DockerListResponse struct {
	Registries map[string]string `json:"registries"`
}
