package sshkeys

import (
	"bytes"
	"encoding/binary"
)

// Kind says what a blob handed to an agent for signing is.
type Kind int

// Kinds of sign data.
const (
	KindUnknown  Kind = iota
	KindUserAuth      // an SSH userauth request (RFC 4252 §7): a login
	KindSSHSig        // an SSHSIG blob (OpenSSH PROTOCOL.sshsig): git commits, files
)

func (k Kind) String() string {
	switch k {
	case KindUserAuth:
		return "userauth"
	case KindSSHSig:
		return "sshsig"
	}
	return "unknown"
}

// Userauth methods a publickey signature can be made for.
const (
	MethodPublicKey = "publickey"
	MethodHostbound = "publickey-hostbound-v00@openssh.com"
)

const (
	msgUserAuthRequest = 50
	sshsigMagic        = "SSHSIG"
)

// SignData is what ParseSignData found in the data a guest asks to sign.
// Only the fields of its Kind are set. It points into the parsed data.
type SignData struct {
	Kind Kind

	// KindUserAuth.
	SessionID []byte
	User      string
	Service   string
	Method    string // MethodPublicKey or MethodHostbound
	Algorithm string // the public key algorithm the client chose
	Key       []byte // wire blob of the key that signs
	HostKey   []byte // wire blob of the server's host key (MethodHostbound only)

	// KindSSHSig.
	Namespace string // "git", "file", …
	HashAlg   string // "sha512", "sha256"
}

// ParseSignData classifies data, which comes from the guest and may be
// anything. A blob is a userauth request or an SSHSIG blob only when it is
// exactly one, with nothing left over; everything else is KindUnknown.
func ParseSignData(data []byte) SignData {
	if sd, ok := parseSSHSig(data); ok {
		return sd
	}
	if sd, ok := parseUserAuth(data); ok {
		return sd
	}
	return SignData{Kind: KindUnknown}
}

func parseUserAuth(data []byte) (SignData, bool) {
	r := reader{b: data}
	sd := SignData{Kind: KindUserAuth}
	sd.SessionID = r.bytes()
	if r.byte() != msgUserAuthRequest {
		return SignData{}, false
	}
	sd.User = r.str()
	sd.Service = r.str()
	sd.Method = r.str()
	if r.bad || (sd.Method != MethodPublicKey && sd.Method != MethodHostbound) {
		return SignData{}, false
	}
	if r.byte() != 1 { // "has signature": TRUE in what gets signed
		return SignData{}, false
	}
	sd.Algorithm = r.str()
	sd.Key = r.bytes()
	if sd.Method == MethodHostbound {
		sd.HostKey = r.bytes()
	}
	if r.bad || len(r.b) != 0 || len(sd.SessionID) == 0 || len(sd.Key) == 0 {
		return SignData{}, false
	}
	return sd, true
}

func parseSSHSig(data []byte) (SignData, bool) {
	rest, ok := bytes.CutPrefix(data, []byte(sshsigMagic))
	if !ok {
		return SignData{}, false
	}
	r := reader{b: rest}
	sd := SignData{Kind: KindSSHSig}
	sd.Namespace = r.str()
	r.bytes() // reserved
	sd.HashAlg = r.str()
	hash := r.bytes()
	if r.bad || len(r.b) != 0 || sd.Namespace == "" || len(hash) == 0 {
		return SignData{}, false
	}
	return sd, true
}

// reader reads SSH wire types; after the first short read every read
// returns zero values and bad stays set.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes() []byte {
	if len(r.b) < 4 {
		r.fail()
		return nil
	}
	n := binary.BigEndian.Uint32(r.b)
	if uint64(n) > uint64(len(r.b)-4) {
		r.fail()
		return nil
	}
	out := r.b[4 : 4+n : 4+n]
	r.b = r.b[4+n:]
	return out
}

func (r *reader) str() string { return string(r.bytes()) }

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) fail() { r.b, r.bad = nil, true }
