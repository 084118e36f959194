// Package config loads, validates and resolves spuff's host configuration
// (~/.spuff/config.yaml) and knows where the host's files live.
package config

import (
	"regexp"
	"slices"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// At most 63 characters, checked apart: a bounded repetition compiles to
// one copy per repeat, held for the process's life.
var shedName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// ShedNameRule says what ValidShedName accepts, for the errors that refuse a name.
const ShedNameRule = "lowercase letters, digits and dashes (at most 63, not starting with a dash)"

// ValidShedName reports whether name can name a shed: lowercase letters,
// digits and dashes, at most 63 characters, as in a host name label.
func ValidShedName(name string) bool { return len(name) <= 63 && shedName.MatchString(name) }

// Config is the whole file. Every key is optional.
type Config struct {
	SSH      SSH      `mapstructure:"ssh" yaml:"ssh" json:"ssh"`
	AWS      AWS      `mapstructure:"aws" yaml:"aws" json:"aws"`
	Docker   Docker   `mapstructure:"docker" yaml:"docker" json:"docker"`
	Approval Approval `mapstructure:"approval" yaml:"approval" json:"approval"`
	Limits   Limits   `mapstructure:"limits" yaml:"limits" json:"limits"`
	Audit    Audit    `mapstructure:"audit" yaml:"audit" json:"audit"`
	// Provisioning: how sheds are made and ended (provisioning/).
	Provision    Provision               `mapstructure:"provision" yaml:"provision" json:"provision"`
	QEMU         QEMU                    `mapstructure:"qemu" yaml:"qemu" json:"qemu"`
	DigitalOcean DigitalOcean            `mapstructure:"digitalocean" yaml:"digitalocean" json:"digitalocean"`
	Hetzner      Hetzner                 `mapstructure:"hetzner" yaml:"hetzner" json:"hetzner"`
	Sheds        map[string]ShedOverride `mapstructure:"sheds" yaml:"sheds" json:"sheds"`
}

// SSH configures the ssh-agent namespace.
type SSH struct {
	Mode string   `mapstructure:"mode" yaml:"mode" json:"mode"` // auto | agent-forward | local-keys
	Keys []string `mapstructure:"keys" yaml:"keys" json:"keys"` // allowed SHA256 fingerprints; empty = all
	// Destinations are host patterns (github.com, *.corp.example,
	// [10.0.0.5]:2222) a login may go to, matched against the names the
	// host's own known_hosts gives the server's host key; empty = anywhere.
	Destinations []string `mapstructure:"destinations" yaml:"destinations" json:"destinations"`
}

// AWS configures the aws-credentials namespace.
type AWS struct {
	SourceProfile      string        `mapstructure:"source_profile" yaml:"source_profile" json:"source_profile"`
	Region             string        `mapstructure:"region" yaml:"region" json:"region"`
	DefaultRole        string        `mapstructure:"default_role" yaml:"default_role" json:"default_role"`
	ExternalID         string        `mapstructure:"external_id" yaml:"external_id" json:"external_id"`
	SessionDuration    time.Duration `mapstructure:"session_duration" yaml:"session_duration" json:"session_duration"`
	CacheRefreshBefore time.Duration `mapstructure:"cache_refresh_before" yaml:"cache_refresh_before" json:"cache_refresh_before"`
	STSEndpoint        string        `mapstructure:"sts_endpoint" yaml:"sts_endpoint" json:"sts_endpoint"`
	SessionTags        bool          `mapstructure:"session_tags" yaml:"session_tags" json:"session_tags"`
}

// Docker configures the docker-credentials namespace.
type Docker struct {
	Registries []string `mapstructure:"registries" yaml:"registries" json:"registries"`
	AllowAll   bool     `mapstructure:"allow_all" yaml:"allow_all" json:"allow_all"`
}

// Approval configures when a human is asked.
type Approval struct {
	Enabled       bool          `mapstructure:"enabled" yaml:"enabled" json:"enabled"`
	Policy        string        `mapstructure:"policy" yaml:"policy" json:"policy"` // per-request | per-session | per-shed
	SessionTTL    time.Duration `mapstructure:"session_ttl" yaml:"session_ttl" json:"session_ttl"`
	PromptTimeout time.Duration `mapstructure:"prompt_timeout" yaml:"prompt_timeout" json:"prompt_timeout"`
	Require       Require       `mapstructure:"require" yaml:"require" json:"require"`
}

// Require lists which operation classes ask when approval is enabled.
type Require struct {
	SSHLogin bool     `mapstructure:"ssh_login" yaml:"ssh_login" json:"ssh_login"`
	SSHSign  []string `mapstructure:"ssh_sign" yaml:"ssh_sign" json:"ssh_sign"` // sshsig namespaces; "*" = all
	AWS      bool     `mapstructure:"aws" yaml:"aws" json:"aws"`
	Docker   bool     `mapstructure:"docker" yaml:"docker" json:"docker"`
}

// Limits rate-limits each shed.
type Limits struct {
	RequestsPerSecond float64 `mapstructure:"requests_per_second" yaml:"requests_per_second" json:"requests_per_second"`
	Burst             int     `mapstructure:"burst" yaml:"burst" json:"burst"`
}

// Audit says where the audit log goes. It cannot be turned off.
type Audit struct {
	Path string `mapstructure:"path" yaml:"path" json:"path"`
	// Durability is when a line is flushed: "batch" (default) right after
	// the reply, "fsync" before it. The line is written before the reply
	// either way.
	Durability string `mapstructure:"durability" yaml:"durability" json:"durability"`
}

// ShedOverride is one sheds.NAME section. Nil or empty fields inherit.
type ShedOverride struct {
	Namespaces []string          `mapstructure:"namespaces" yaml:"namespaces" json:"namespaces,omitempty"`
	SSH        *SSHOverride      `mapstructure:"ssh" yaml:"ssh" json:"ssh,omitempty"`
	AWS        *AWSOverride      `mapstructure:"aws" yaml:"aws" json:"aws,omitempty"`
	Docker     *DockerOverride   `mapstructure:"docker" yaml:"docker" json:"docker,omitempty"`
	Approval   *ApprovalOverride `mapstructure:"approval" yaml:"approval" json:"approval,omitempty"`
	Limits     *Limits           `mapstructure:"limits" yaml:"limits" json:"limits,omitempty"`
	// Provider makes this shed when `spuff up NAME` names no --provider.
	Provider string `mapstructure:"provider" yaml:"provider" json:"provider,omitempty"`
	// IdleTimeout overrides provision.idle_timeout; 0 = never.
	IdleTimeout *time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout" json:"idle_timeout,omitempty"`
}

// SSHOverride is sheds.NAME.ssh.
type SSHOverride struct {
	Keys         []string `mapstructure:"keys" yaml:"keys" json:"keys,omitempty"`
	Destinations []string `mapstructure:"destinations" yaml:"destinations" json:"destinations,omitempty"`
}

// AWSOverride is sheds.NAME.aws.
type AWSOverride struct {
	Role          string `mapstructure:"role" yaml:"role" json:"role,omitempty"`
	SessionPolicy string `mapstructure:"session_policy" yaml:"session_policy" json:"session_policy,omitempty"`
	ExternalID    string `mapstructure:"external_id" yaml:"external_id" json:"external_id,omitempty"`
	Region        string `mapstructure:"region" yaml:"region" json:"region,omitempty"`
}

// DockerOverride is sheds.NAME.docker.
type DockerOverride struct {
	Registries []string `mapstructure:"registries" yaml:"registries" json:"registries,omitempty"`
	AllowAll   *bool    `mapstructure:"allow_all" yaml:"allow_all" json:"allow_all,omitempty"`
}

// ApprovalOverride is sheds.NAME.approval.
type ApprovalOverride struct {
	Enabled       *bool            `mapstructure:"enabled" yaml:"enabled" json:"enabled,omitempty"`
	Policy        string           `mapstructure:"policy" yaml:"policy" json:"policy,omitempty"`
	SessionTTL    *time.Duration   `mapstructure:"session_ttl" yaml:"session_ttl" json:"session_ttl,omitempty"`
	PromptTimeout *time.Duration   `mapstructure:"prompt_timeout" yaml:"prompt_timeout" json:"prompt_timeout,omitempty"`
	Require       *RequireOverride `mapstructure:"require" yaml:"require" json:"require,omitempty"`
}

// RequireOverride is sheds.NAME.approval.require. Each field it leaves out
// keeps the global approval.require: a shed that adds aws must not lose
// ssh_login and ssh_sign by saying so. An empty ssh_sign list means no
// namespace asks.
type RequireOverride struct {
	SSHLogin *bool    `mapstructure:"ssh_login" yaml:"ssh_login" json:"ssh_login,omitempty"`
	SSHSign  []string `mapstructure:"ssh_sign" yaml:"ssh_sign" json:"ssh_sign"`
	AWS      *bool    `mapstructure:"aws" yaml:"aws" json:"aws,omitempty"`
	Docker   *bool    `mapstructure:"docker" yaml:"docker" json:"docker,omitempty"`
}

// Shed is the effective configuration of one shed: the global sections with
// that shed's overrides applied.
type Shed struct {
	Name          string
	Namespaces    []string
	SSH           SSH
	AWS           AWS
	Role          string // AWS role ARN to assume: sheds.NAME.aws.role or aws.default_role
	SessionPolicy string // optional inline policy narrowing the role
	Docker        Docker
	Approval      Approval
	Limits        Limits
	Provider      string        // provider `spuff up` uses for it
	IdleTimeout   time.Duration // 0 = never
	IdleNotice    time.Duration
}

// Allows reports whether the shed may use namespace ns at all.
func (s *Shed) Allows(ns string) bool { return slices.Contains(s.Namespaces, ns) }

// ForShed resolves the effective configuration of shed name.
func (c *Config) ForShed(name string) Shed {
	s := Shed{
		Name:        name,
		Namespaces:  bus.Namespaces(), // a shed whose section lists none may use all
		SSH:         SSH{Mode: c.SSH.Mode, Keys: slices.Clone(c.SSH.Keys), Destinations: slices.Clone(c.SSH.Destinations)},
		AWS:         c.AWS,
		Role:        c.AWS.DefaultRole,
		Docker:      Docker{Registries: slices.Clone(c.Docker.Registries), AllowAll: c.Docker.AllowAll},
		Approval:    c.Approval,
		Limits:      c.Limits,
		Provider:    c.Provision.Provider,
		IdleTimeout: c.Provision.IdleTimeout,
		IdleNotice:  c.Provision.IdleNotice,
	}
	s.Approval.Require.SSHSign = slices.Clone(c.Approval.Require.SSHSign)
	o, ok := c.Sheds[name]
	if !ok {
		return s
	}
	if o.Namespaces != nil {
		s.Namespaces = slices.Clone(o.Namespaces)
	}
	if o.SSH != nil && o.SSH.Keys != nil {
		s.SSH.Keys = slices.Clone(o.SSH.Keys)
	}
	if o.SSH != nil && o.SSH.Destinations != nil {
		s.SSH.Destinations = slices.Clone(o.SSH.Destinations)
	}
	if a := o.AWS; a != nil {
		if a.Role != "" {
			s.Role = a.Role
		}
		s.SessionPolicy = a.SessionPolicy
		if a.ExternalID != "" {
			s.AWS.ExternalID = a.ExternalID
		}
		if a.Region != "" {
			s.AWS.Region = a.Region
		}
	}
	if d := o.Docker; d != nil {
		if d.Registries != nil {
			s.Docker.Registries = slices.Clone(d.Registries)
		}
		if d.AllowAll != nil {
			s.Docker.AllowAll = *d.AllowAll
		}
	}
	if a := o.Approval; a != nil {
		if a.Enabled != nil {
			s.Approval.Enabled = *a.Enabled
		}
		if a.Policy != "" {
			s.Approval.Policy = a.Policy
		}
		if a.SessionTTL != nil {
			s.Approval.SessionTTL = *a.SessionTTL
		}
		if a.PromptTimeout != nil {
			s.Approval.PromptTimeout = *a.PromptTimeout
		}
		if r := a.Require; r != nil {
			if r.SSHLogin != nil {
				s.Approval.Require.SSHLogin = *r.SSHLogin
			}
			if r.SSHSign != nil {
				s.Approval.Require.SSHSign = slices.Clone(r.SSHSign)
			}
			if r.AWS != nil {
				s.Approval.Require.AWS = *r.AWS
			}
			if r.Docker != nil {
				s.Approval.Require.Docker = *r.Docker
			}
		}
	}
	if o.Provider != "" {
		s.Provider = o.Provider
	}
	if o.IdleTimeout != nil {
		s.IdleTimeout = *o.IdleTimeout
		if s.IdleNotice >= s.IdleTimeout {
			// A notice as long as the timeout would warn at once; keep a tenth.
			s.IdleNotice = s.IdleTimeout / 10
		}
	}
	if o.Limits != nil {
		if o.Limits.RequestsPerSecond > 0 {
			s.Limits.RequestsPerSecond = o.Limits.RequestsPerSecond
		}
		if o.Limits.Burst > 0 {
			s.Limits.Burst = o.Limits.Burst
		}
	}
	return s
}

// Default returns the configuration used when the file sets nothing.
func Default() *Config {
	c := &Config{
		SSH: SSH{Mode: "auto"},
		AWS: AWS{
			SourceProfile:      "default",
			Region:             "us-east-1",
			SessionDuration:    time.Hour,
			CacheRefreshBefore: 15 * time.Minute,
		},
		Docker: Docker{},
		Approval: Approval{
			Policy:        "per-session",
			SessionTTL:    4 * time.Hour,
			PromptTimeout: 30 * time.Second,
			Require:       Require{SSHLogin: true, SSHSign: []string{"*"}},
		},
		Limits: Limits{RequestsPerSecond: 20, Burst: 50},
		Audit:  Audit{Durability: "batch"},
	}
	c.Provision, c.QEMU, c.DigitalOcean, c.Hetzner = defaultProvision()
	return c
}
