package sshkeys

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"unicode"
)

// destination names the server of a login: the host key the hostbound
// method carries, else the one session-bind recorded for this connection.
func (s *Service) destination(shed string, conn uint64, sd SignData) string {
	hk := sd.HostKey
	if hk == nil {
		hk = s.binds.hostKey(shed, conn, sd.SessionID)
	}
	if hk == nil {
		return "unknown-host"
	}
	if names := s.known.Names(hk); len(names) > 0 {
		return clean(names[0])
	}
	return "unknown-host(" + fingerprint(hk) + ")"
}

func (s *Service) hostNames(hk []byte) string {
	if names := s.known.Names(hk); len(names) > 0 {
		return " " + clean(names[0])
	}
	return ""
}

// fingerprint is ssh.FingerprintSHA256 of a wire blob, without parsing it.
func fingerprint(blob []byte) string {
	h := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// keyDesc is "TYPE SHA256:…" for a wire blob.
func keyDesc(blob []byte) string {
	typ := "unknown"
	if len(blob) >= 4 {
		if n := binary.BigEndian.Uint32(blob); uint64(n) <= uint64(len(blob)-4) {
			typ = clean(string(blob[4 : 4+n]))
		}
	}
	return typ + " " + fingerprint(blob)
}

// clean makes guest-chosen text safe to show a human: printable, one line, short.
func clean(s string) string {
	const max = 80
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) || r == '\u2028' || r == '\u2029' {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
