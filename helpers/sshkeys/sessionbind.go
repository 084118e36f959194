package sshkeys

import (
	"errors"

	"golang.org/x/crypto/ssh"
)

// SessionBind is a parsed, verified session-bind@openssh.com request
// (bus.ExtSessionBind): ssh tells its agent which server (host key) and
// which session it is authenticating to, signed by that server, before it
// asks for the userauth signature.
type SessionBind struct {
	HostKey    []byte // wire blob of the server's host key
	SessionID  []byte
	Forwarding bool // bound for a forwarded agent rather than for a login
}

// ParseSessionBind reads the contents of a session-bind extension request
// (after its type string) and checks that the host key signed the session
// id, as OpenSSH's agent does.
func ParseSessionBind(contents []byte) (*SessionBind, error) {
	r := reader{b: contents}
	hostKey := r.bytes()
	sid := r.bytes()
	sigBlob := r.bytes()
	fwd := r.byte()
	if r.bad || len(r.b) != 0 || fwd > 1 {
		return nil, errors.New("sshkeys: malformed session-bind request")
	}
	if len(sid) == 0 || len(sid) > 64 {
		return nil, errors.New("sshkeys: session-bind session id has a bad length")
	}
	pub, err := ssh.ParsePublicKey(hostKey)
	if err != nil {
		return nil, errors.New("sshkeys: session-bind host key does not parse")
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(sigBlob, &sig); err != nil {
		return nil, errors.New("sshkeys: session-bind signature does not parse")
	}
	if err := pub.Verify(sid, &sig); err != nil {
		return nil, errors.New("sshkeys: session-bind signature does not verify")
	}
	return &SessionBind{HostKey: hostKey, SessionID: sid, Forwarding: fwd == 1}, nil
}
