package sshkeys

import (
	"bytes"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// Why a login in a destination-restricted shed was refused. Each is said in
// the audit detail and in the error the shed's ssh prints.
const (
	refuseUnbound     = "unbound"
	refuseMismatch    = "session id mismatch"
	refuseUnknownHost = "unknown host key"
	refuseNotAllowed  = "not allowed"
)

// destRefusal is a login the destination policy refused: which hop and why.
type destRefusal struct {
	reason string
	dest   string // the refused hop's name (or fingerprint); "" when unbound
}

// checkDestinations applies a shed's ssh.destinations to a login on one
// guest agent connection, as OpenSSH's agent applies a key's destination
// constraints: the connection must be bound by session-bind (whose
// signature ParseSessionBind verified), the login must be for the session
// bound last, and every hop bound on the connection (a forwarding bind per
// hop of an agent-forwarding chain) must be a host the host's known_hosts
// names with a name a pattern allows. Names come only from the host's
// known_hosts, never from the shed.
func (s *Service) checkDestinations(patterns []string, hops []*SessionBind, sd SignData) *destRefusal {
	if len(hops) == 0 {
		return &destRefusal{reason: refuseUnbound}
	}
	last := hops[len(hops)-1]
	if last.Forwarding || !bytes.Equal(last.SessionID, sd.SessionID) {
		return &destRefusal{reason: refuseMismatch, dest: s.hopName(last.HostKey)}
	}
	if sd.HostKey != nil && !bytes.Equal(sd.HostKey, last.HostKey) {
		return &destRefusal{reason: refuseMismatch, dest: s.hopName(sd.HostKey)}
	}
	for _, h := range hops {
		names := s.known.Names(h.HostKey)
		if len(names) == 0 {
			return &destRefusal{reason: refuseUnknownHost, dest: "unknown-host(" + fingerprint(h.HostKey) + ")"}
		}
		if !config.MatchDestination(patterns, names) {
			return &destRefusal{reason: refuseNotAllowed, dest: clean(names[0])}
		}
	}
	return nil
}

// refuseDestination applies r's ssh.destinations to a sign: nil when the
// shed is unrestricted, the data is not a login, or the login may go on.
func (s *Service) refuseDestination(r *helper.Request, conn uint64, sd SignData) *destRefusal {
	if r.Config == nil || len(r.Config.SSH.Destinations) == 0 || sd.Kind != KindUserAuth {
		return nil
	}
	return s.checkDestinations(r.Config.SSH.Destinations, s.binds.hops(r.Shed, conn), sd)
}

// detail is the audit detail's tail: " refused: REASON DEST".
func (d *destRefusal) detail() string {
	if d.dest == "" {
		return " refused: " + d.reason
	}
	return " refused: " + d.reason + " " + d.dest
}

func (s *Service) hopName(hk []byte) string {
	if names := s.known.Names(hk); len(names) > 0 {
		return clean(names[0])
	}
	return "unknown-host(" + fingerprint(hk) + ")"
}

// message is what the shed's ssh is told.
func (d *destRefusal) message(shed string) string {
	switch d.reason {
	case refuseUnbound:
		return "shed " + shed + " may sign in only to its ssh.destinations, and this agent connection was not bound to a server: use OpenSSH 8.9 or newer as the ssh client (older ones, and clients that are not OpenSSH, do not send session-bind@openssh.com)"
	case refuseMismatch:
		return "this login is not for the ssh session bound on this agent connection (" + d.dest + "); refused"
	case refuseUnknownHost:
		return "the server " + d.dest + " is not in the known_hosts of your computer, so shed " + shed + " may not sign in to it (ssh.destinations)"
	}
	return d.dest + " is not in sheds." + shed + ".ssh.destinations (or ssh.destinations) in the spuff config on your computer"
}
