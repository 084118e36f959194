package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spuff-dev/spuff/guest/bus"
)

// Allowed values.
var (
	SSHModes         = []string{"auto", "agent-forward", "local-keys"}
	ApprovalPolicies = []string{"per-request", "per-session", "per-shed", "none"}
)

// Bounds STS puts on a session (role chaining aside).
const (
	MinSessionDuration = 15 * time.Minute
	MaxSessionDuration = 12 * time.Hour
)

var (
	// awsRoleARN is an IAM role in any AWS partition (aws, aws-cn, aws-us-gov…).
	awsRoleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
	// anyARN is arn:partition:service:region:account:resource, which is what
	// STS-compatible servers other than AWS (MinIO: arn:minio:iam:::role/x) take.
	anyARN     = regexp.MustCompile(`^arn:[a-z][a-z0-9-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9a-z-]*:\S+$`)
	externalID = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	// region and hostLabel are at most 63 characters, checked apart: a
	// bounded repetition compiles to one copy per repeat.
	region    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	hostLabel = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$`)
)

// Validate checks every value and reports every problem at once, each as
// "config: KEY: what is wrong" with the key's dotted path.
func (c *Config) Validate() error {
	var v validator
	v.oneOf("ssh.mode", c.SSH.Mode, SSHModes)
	v.fingerprints("ssh.keys", c.SSH.Keys)
	v.destinations("ssh.destinations", c.SSH.Destinations)

	a := c.AWS
	v.nonEmpty("aws.source_profile", a.SourceProfile)
	v.region("aws.region", a.Region)
	v.role("aws.default_role", a.DefaultRole)
	v.externalID("aws.external_id", a.ExternalID)
	if a.SessionDuration < MinSessionDuration || a.SessionDuration > MaxSessionDuration {
		v.addf("aws.session_duration", "%s is outside what STS grants (%s to %s)", a.SessionDuration, MinSessionDuration, MaxSessionDuration)
	}
	v.positive("aws.cache_refresh_before", a.CacheRefreshBefore)
	if a.CacheRefreshBefore > 0 && a.CacheRefreshBefore >= a.SessionDuration {
		v.addf("aws.cache_refresh_before", "%s must be shorter than aws.session_duration (%s), or every request would mint new credentials", a.CacheRefreshBefore, a.SessionDuration)
	}
	if a.STSEndpoint != "" {
		if hasUserinfo(a.STSEndpoint) {
			v.addf("aws.sts_endpoint", "the URL carries a user name or password (not repeated here); credentials never go into a URL: %s", hintAWS)
		} else if u, err := url.Parse(a.STSEndpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.addf("aws.sts_endpoint", "%q is not an http(s) URL", a.STSEndpoint)
		}
	}

	v.registries("docker.registries", c.Docker.Registries)
	v.approval("approval", c.Approval)
	v.limits("limits", c.Limits, false)
	v.provision(c)

	if c.Audit.Path == "" {
		v.addf("audit.path", "is empty; the audit log cannot be turned off")
	} else if !filepath.IsAbs(ExpandHome(c.Audit.Path)) {
		v.addf("audit.path", "%q must be absolute (or start with ~/)", c.Audit.Path)
	}
	if d := c.Audit.Durability; d != "" && d != "batch" && d != "fsync" {
		v.addf("audit.durability", "%q: use batch (flush within 100 ms of the reply) or fsync (flush before it)", d)
	}

	for _, name := range slices.Sorted(maps.Keys(c.Sheds)) {
		s := c.Sheds[name]
		p := "sheds." + name
		if !ValidShedName(name) {
			v.addf(p, "shed name %q must be "+ShedNameRule, name)
		}
		for i, ns := range s.Namespaces {
			if !bus.IsNamespace(ns) {
				v.addf(fmt.Sprintf("%s.namespaces[%d]", p, i), "%q is not one of %s", ns, strings.Join(bus.Namespaces(), ", "))
			}
		}
		if s.SSH != nil {
			v.fingerprints(p+".ssh.keys", s.SSH.Keys)
			v.destinations(p+".ssh.destinations", s.SSH.Destinations)
		}
		if o := s.AWS; o != nil {
			v.role(p+".aws.role", o.Role)
			v.externalID(p+".aws.external_id", o.ExternalID)
			v.region(p+".aws.region", o.Region)
			if o.SessionPolicy != "" {
				var obj map[string]any
				if err := json.Unmarshal([]byte(o.SessionPolicy), &obj); err != nil {
					v.addf(p+".aws.session_policy", "is not a JSON policy document: %v", err)
				}
			}
		}
		if s.Docker != nil {
			v.registries(p+".docker.registries", s.Docker.Registries)
		}
		if o := s.Approval; o != nil {
			if o.Policy != "" {
				v.oneOf(p+".approval.policy", o.Policy, ApprovalPolicies)
			}
			if o.SessionTTL != nil {
				v.positive(p+".approval.session_ttl", *o.SessionTTL)
			}
			if o.PromptTimeout != nil {
				v.promptTimeout(p+".approval.prompt_timeout", *o.PromptTimeout)
			}
			if o.Require != nil {
				v.sshSign(p+".approval.require.ssh_sign", o.Require.SSHSign)
			}
		}
		if s.Limits != nil {
			v.limits(p+".limits", *s.Limits, true)
		}
		if s.Provider != "" {
			v.oneOf(p+".provider", s.Provider, Providers)
		}
		if s.IdleTimeout != nil && *s.IdleTimeout < 0 {
			v.addf(p+".idle_timeout", "%s must be 0 (never) or positive", *s.IdleTimeout)
		}
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) addf(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) oneOf(key, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		v.addf(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
}

func (v *validator) nonEmpty(key, val string) {
	if strings.TrimSpace(val) == "" {
		v.addf(key, "is empty")
	}
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.addf(key, "%s must be positive", d)
	}
}

// fingerprints checks OpenSSH SHA256 fingerprints: "SHA256:" and the
// unpadded base64 of 32 bytes, as ssh-add -l prints them.
func (v *validator) fingerprints(key string, fps []string) {
	for i, fp := range fps {
		b64, ok := strings.CutPrefix(fp, "SHA256:")
		sum, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
		if !ok || err != nil || len(sum) != 32 {
			v.addf(fmt.Sprintf("%s[%d]", key, i), "%q is not a key fingerprint like \"SHA256:\" and 43 base64 characters (see ssh-add -l)", fp)
		}
	}
}

// destinations checks known_hosts-style host patterns: one host each, no
// spaces, commas or negation (a list of allowed destinations has no use
// for "!").
func (v *validator) destinations(key string, pats []string) {
	for i, p := range pats {
		if p == "" || strings.ContainsAny(p, " \t,!|") || len(p) > 255 {
			v.addf(fmt.Sprintf("%s[%d]", key, i), "%q is not a host pattern like github.com, *.corp.example or [10.0.0.5]:2222", p)
		}
	}
}

func (v *validator) role(key, arn string) {
	switch {
	case arn == "":
	case strings.HasPrefix(arn, "arn:aws"):
		if !awsRoleARN.MatchString(arn) {
			v.addf(key, "%q is not an IAM role ARN like arn:aws:iam::123456789012:role/NAME", arn)
		}
	case !anyARN.MatchString(arn):
		v.addf(key, "%q is not a role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)", arn)
	}
}

func (v *validator) externalID(key, id string) {
	if id != "" && (len(id) < 2 || len(id) > 1224 || !externalID.MatchString(id)) {
		v.addf(key, "must be 2 to 1224 characters of letters, digits and +=,.@:/-")
	}
}

func (v *validator) region(key, r string) {
	if r != "" && (len(r) > 63 || !region.MatchString(r)) {
		v.addf(key, "%q is not a region name like us-east-1", r)
	}
}

func (v *validator) approval(key string, a Approval) {
	v.oneOf(key+".policy", a.Policy, ApprovalPolicies)
	v.positive(key+".session_ttl", a.SessionTTL)
	v.promptTimeout(key+".prompt_timeout", a.PromptTimeout)
	v.sshSign(key+".require.ssh_sign", a.Require.SSHSign)
}

// MaxPromptTimeout is the longest approval.prompt_timeout. A shed's call
// waits bus.DefaultMaxWait from the moment it asks, and a yes starts work
// of its own (an AssumeRole, a credential helper) that must answer inside
// that wait too; 15 s is left for it, where such work takes well under one.
const MaxPromptTimeout = bus.DefaultMaxWait - 15*time.Second

// promptTimeout keeps a question open no longer than the shed can wait for
// its answer: past that, the shed's client has failed already while the
// tray still asks.
func (v *validator) promptTimeout(key string, d time.Duration) {
	v.positive(key, d)
	if d > MaxPromptTimeout {
		v.addf(key, "%s is longer than a shed can wait for an answer and the work a yes starts (%s in all); use %s or less", d, bus.DefaultMaxWait, MaxPromptTimeout)
	}
}

func (v *validator) sshSign(key string, nss []string) {
	for i, ns := range nss {
		if strings.TrimSpace(ns) == "" {
			v.addf(fmt.Sprintf("%s[%d]", key, i), "is empty; name an sshsig namespace such as \"git\", or \"*\" for all")
		}
	}
}

// limits checks rate limits; in a shed override zero means "inherit".
func (v *validator) limits(key string, l Limits, override bool) {
	if l.RequestsPerSecond < 0 || (!override && l.RequestsPerSecond == 0) || math.IsNaN(l.RequestsPerSecond) || math.IsInf(l.RequestsPerSecond, 0) {
		v.addf(key+".requests_per_second", "%v must be a number greater than 0", l.RequestsPerSecond)
	}
	if l.Burst < 0 || (!override && l.Burst == 0) {
		v.addf(key+".burst", "%d must be greater than 0", l.Burst)
	}
}

// registries checks registry addresses the way docker spells them: a host
// name or IP with an optional port, optionally with an http(s) scheme and a
// path, which the docker namespace strips.
func (v *validator) registries(key string, regs []string) {
	for i, r := range regs {
		if hasUserinfo(r) {
			v.addf(fmt.Sprintf("%s[%d]", key, i), "the address carries a user name or password (not repeated here); credentials never go into a URL: %s", hintDocker)
		} else if err := checkRegistry(r); err != nil {
			v.addf(fmt.Sprintf("%s[%d]", key, i), "%q is not a registry host: %v", r, err)
		}
	}
}

func checkRegistry(r string) error {
	s := strings.ToLower(strings.TrimSpace(r))
	if s == "" {
		return errors.New("empty")
	}
	if rest, ok := strings.CutPrefix(s, "https://"); ok {
		s = rest
	} else if rest, ok := strings.CutPrefix(s, "http://"); ok {
		s = rest
	} else if strings.Contains(s, "://") {
		return errors.New("only http:// and https:// may prefix a registry")
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return errors.New("no host")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return errors.New("port 0")
		}
		return nil
	}
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", port)
		}
	}
	if h, ok := strings.CutPrefix(host, "["); ok {
		a, err := netip.ParseAddr(strings.TrimSuffix(h, "]"))
		if err != nil || !a.Is6() || !strings.HasSuffix(h, "]") {
			return errors.New("bad IPv6 address")
		}
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) > 253 {
		return errors.New("host name too long")
	}
	for _, l := range strings.Split(host, ".") {
		if len(l) > 63 || !hostLabel.MatchString(l) {
			return errors.New("not a host name")
		}
	}
	return nil
}
