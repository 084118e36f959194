package hetzner

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/internal/cloudapi"
)

// state maps a server's status.
func state(s hcloud.ServerStatus) provisioning.State {
	switch s {
	case hcloud.ServerStatusInitializing, hcloud.ServerStatusStarting, hcloud.ServerStatusMigrating, hcloud.ServerStatusRebuilding:
		return provisioning.Pending
	case hcloud.ServerStatusRunning:
		return provisioning.Running
	case hcloud.ServerStatusOff:
		return provisioning.Stopped
	case hcloud.ServerStatusStopping, hcloud.ServerStatusDeleting:
		return provisioning.Stopping
	}
	return provisioning.Unknown
}

// mapServer is what spuff knows of a server.
func mapServer(s *hcloud.Server) provisioning.Machine {
	m := provisioning.Machine{
		ID:      strconv.FormatInt(s.ID, 10),
		Name:    s.Labels[provisioning.Label],
		State:   state(s.Status),
		Status:  string(s.Status),
		Labels:  maps.Clone(s.Labels),
		Created: s.Created,
	}
	if m.Name == "" {
		m.Name = s.Name
	}
	if ip := s.PublicNet.IPv4.IP; ip != nil && !s.PublicNet.IPv4.Blocked {
		m.SSHAddr = cloudapi.SSHAddr(ip.String())
	}
	return m
}

// explain turns an API error into the provider's message and what to do.
func (p *Provider) explain(what string, err error) error {
	var e hcloud.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("hetzner: %s: %w", what, err)
	}
	var hint string
	l := strings.ToLower(e.Message)
	switch e.Code {
	case hcloud.ErrorCodeUnauthorized:
		hint = "check " + TokenEnv + " (the API did not accept it)"
	case hcloud.ErrorCodeForbidden:
		hint = "the token in " + TokenEnv + " is read-only; make a Read & Write token for the project"
	case hcloud.ErrorCodeRateLimitExceeded:
		hint = "the API rate limit is spent; try again in a minute"
	case hcloud.ErrorCodeResourceLimitExceeded:
		hint = "the project's limit is reached; delete a server or ask Hetzner to raise it"
	case hcloud.ErrorCodeUniquenessError:
		hint = "a resource of that name exists in the project; pick another shed name or remove the old one"
	case hcloud.ErrorCodeResourceUnavailable:
		hint = fmt.Sprintf("%s is not available in %s right now; try another hetzner.location or hetzner.server_type", p.cfg.ServerType, p.cfg.Location)
	case hcloud.ErrorCodeInvalidInput, hcloud.ErrorCodeNotFound, hcloud.ErrorCodeInvalidServerType:
		switch {
		case strings.Contains(l, "server_type") || strings.Contains(l, "server type"):
			hint = fmt.Sprintf("check hetzner.server_type (%q) in ~/.spuff/config.yaml", p.cfg.ServerType)
		case strings.Contains(l, "location"):
			hint = fmt.Sprintf("check hetzner.location (%q) in ~/.spuff/config.yaml", p.cfg.Location)
		case strings.Contains(l, "image"):
			hint = fmt.Sprintf("check hetzner.image (%q) in ~/.spuff/config.yaml", p.cfg.Image)
		}
	case hcloud.ErrorCodeServiceError, hcloud.ErrorCodeServerError, hcloud.ErrorCodeBadGateway, hcloud.ErrorCodeTimeout, hcloud.ErrorCodeMaintenance:
		hint = "Hetzner had a problem; try again later"
	}
	out := fmt.Sprintf("hetzner: %s: %s (%s)", what, e.Message, e.Code)
	if hint != "" {
		out += ": " + hint
	}
	return &cloudapi.Explained{Msg: out, Err: err}
}
