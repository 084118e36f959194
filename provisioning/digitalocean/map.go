package digitalocean

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"

	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/internal/cloudapi"
)

// tagRule is DigitalOcean's tag syntax, at most 255 characters: the length
// is checked apart, as {1,255} would compile to 240 KB held for good.
var tagRule = regexp.MustCompile(`^[A-Za-z0-9:_-]+$`)

// Tags maps a machine's labels to droplet tags: the bare Label (so one
// listing finds every shed) and "key:value" for each label, sorted.
func Tags(labels map[string]string) ([]string, error) {
	tags := []string{provisioning.Label}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		t := k + ":" + labels[k]
		if strings.Contains(k, ":") || len(t) > 255 || !tagRule.MatchString(t) {
			return nil, fmt.Errorf("digitalocean: label %s=%s cannot be a tag (letters, digits, '-' and '_' only)", k, labels[k])
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// Labels reads labels back from droplet tags ("key:value"); other tags,
// and the firewall's, are ignored.
func Labels(tags []string) map[string]string {
	l := map[string]string{}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, ":")
		if ok && k != "" && k != fwTagKey {
			l[k] = v
		}
	}
	return l
}

// fwTagKey begins the tag a shed's firewall is applied through.
const fwTagKey = "spuff-fw"

// firewallTag is the tag that puts a droplet behind its shed's firewall:
// the shed's name and owner (neither holds a colon), so that a sweep finds
// the tag of a create that died before its droplet, and a nonce, so that
// no later create of the same shed is put behind it.
func firewallTag(shed, owner, nonce string) string {
	return fwTagKey + ":" + shed + ":" + owner + ":" + nonce
}

// firewallTagOf reports whether tag is a firewall tag of shed and owner.
func firewallTagOf(tag, shed, owner string) bool {
	parts := strings.Split(tag, ":")
	return len(parts) == 4 && parts[0] == fwTagKey && parts[1] == shed && parts[2] == owner && parts[3] != ""
}

// firewallTags are the firewall tags among tags.
func firewallTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if strings.HasPrefix(t, fwTagKey+":") {
			out = append(out, t)
		}
	}
	return out
}

// state maps a droplet's status (new | active | off | archive).
func state(status string) provisioning.State {
	switch status {
	case "new":
		return provisioning.Pending
	case "active":
		return provisioning.Running
	case "off":
		return provisioning.Stopped
	case "archive":
		// Destroyed by DigitalOcean but kept for a while: not coming back.
		return provisioning.Failed
	}
	return provisioning.Unknown
}

// mapDroplet is what spuff knows of a droplet.
func mapDroplet(d godo.Droplet) provisioning.Machine {
	labels := Labels(d.Tags)
	m := provisioning.Machine{
		ID:     strconv.Itoa(d.ID),
		Name:   labels[provisioning.Label],
		State:  state(d.Status),
		Status: d.Status,
		Labels: labels,
	}
	if m.Name == "" {
		m.Name = d.Name
	}
	if ip, err := d.PublicIPv4(); err == nil {
		m.SSHAddr = cloudapi.SSHAddr(ip)
	}
	if t, err := time.Parse(time.RFC3339, d.Created); err == nil {
		m.Created = t
	}
	return m
}

// explain turns an API error into the provider's message and what to do.
func (p *Provider) explain(what string, err error) error {
	var e *godo.ErrorResponse
	if !errors.As(err, &e) || e.Response == nil {
		return fmt.Errorf("digitalocean: %s: %w", what, err)
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Response.StatusCode)
	}
	var hint string
	switch e.Response.StatusCode {
	case http.StatusUnauthorized:
		hint = "check " + p.tokenVar + " (the API did not accept it)"
	case http.StatusForbidden:
		hint = "the token in " + p.tokenVar + " lacks a scope; make one with read and write access"
	case http.StatusTooManyRequests:
		hint = "the API rate limit is spent; try again in a minute"
		if r, ok := cloudapi.ParseReset(e.Response.Header.Get("RateLimit-Reset")); ok {
			hint = "the API rate limit is spent; try again after " + r.UTC().Format(time.RFC3339)
		}
	case http.StatusUnprocessableEntity:
		l := strings.ToLower(msg)
		switch {
		case strings.Contains(l, "limit"):
			hint = "the account's droplet limit is reached; destroy a droplet or ask DigitalOcean to raise it"
		case strings.Contains(l, "size"):
			hint = fmt.Sprintf("check digitalocean.size (%q) in ~/.spuff/config.yaml and that the region offers it", p.cfg.Size)
		case strings.Contains(l, "region"):
			hint = fmt.Sprintf("check digitalocean.region (%q) in ~/.spuff/config.yaml", p.cfg.Region)
		case strings.Contains(l, "image"):
			hint = fmt.Sprintf("check digitalocean.image (%q) in ~/.spuff/config.yaml", p.cfg.Image)
		}
	}
	if e.Response.StatusCode >= 500 {
		hint = "DigitalOcean had a problem; try again later"
	}
	out := fmt.Sprintf("digitalocean: %s: %s (HTTP %d", what, msg, e.Response.StatusCode)
	if e.RequestID != "" {
		out += ", request " + e.RequestID
	}
	out += ")"
	if hint != "" {
		out += ": " + hint
	}
	return &cloudapi.Explained{Msg: out, Err: err}
}
