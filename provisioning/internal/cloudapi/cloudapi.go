// Package cloudapi is what spuff's cloud providers share on the wire: the
// API token's one place (the Authorization header), a transport that keeps
// to the providers' rate limits, the check that lets tests point a provider
// at a fake API without opening a way to send the token elsewhere, and the
// checks every user-data passes before it leaves the host.
package cloudapi

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
)

// Token returns the first of names set in the environment, and its name.
// A missing token is an error naming every variable that would do.
func Token(getenv func(string) string, provider string, names ...string) (token, name string, err error) {
	for _, n := range names {
		t := strings.TrimSpace(getenv(n))
		if t == "" {
			continue
		}
		if !httpguts.ValidHeaderFieldValue(t) {
			// Say which variable, never what it holds.
			return "", n, fmt.Errorf("cloudapi: %s holds characters no API token has (a stray newline?); set it again", n)
		}
		return t, n, nil
	}
	return "", "", fmt.Errorf("cloudapi: no %s API token: set %s in the environment spuff-app runs in (tokens are never read from config): %w", provider, strings.Join(names, " or "), provisioning.ErrNoCredentials)
}

// BaseURL returns the API base URL: def, unless the test-only variable
// named by envVar is set. An override must be https, or http to a loopback
// address (a fake API in a test), so that it cannot send the token in the
// clear across a network.
func BaseURL(getenv func(string) string, envVar, def string) (string, error) {
	raw := strings.TrimSpace(getenv(envVar))
	if raw == "" {
		return def, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("cloudapi: %s=%q is not an API base URL like https://host/", envVar, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return "", fmt.Errorf("cloudapi: %s may use http only to a loopback address (it is for tests against a fake API); %q is not one", envVar, u.Hostname())
		}
	default:
		return "", fmt.Errorf("cloudapi: %s=%q must be an https URL", envVar, raw)
	}
	return u.String(), nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// CheckUserData refuses user-data a provider must not be given: empty,
// bigger than max (the provider's cap), or holding the API token or a
// private key — user-data is readable by any process in a cloud VM.
func CheckUserData(ud []byte, max int, provider, token string) error {
	if len(ud) == 0 {
		return errors.New("cloudapi: the user-data is empty")
	}
	if len(ud) > max {
		return fmt.Errorf("cloudapi: the user-data is %d bytes; %s takes at most %d KiB (remove login keys or trim the template)", len(ud), provider, max>>10)
	}
	if token != "" && bytes.Contains(ud, []byte(token)) {
		return fmt.Errorf("cloudapi: refusing to send user-data that holds the %s API token (anything in the VM can read user-data)", provider)
	}
	if bytes.Contains(ud, []byte("PRIVATE KEY-----")) {
		return errors.New("cloudapi: refusing to send user-data that holds a private key (anything in the VM can read user-data)")
	}
	return nil
}

// SSHSources returns the CIDRs admitted to port 22: cidrs, normalized,
// or everywhere (IPv4 and IPv6) when cidrs is empty.
func SSHSources(cidrs []string) ([]netip.Prefix, error) {
	if len(cidrs) == 0 {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("cloudapi: ssh_from %q is not a CIDR like 203.0.113.0/24", c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// SSHAddr returns ip:22 when ip is a public-looking IPv4 address, else "".
func SSHAddr(ip string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil || !a.Is4() || a.IsUnspecified() {
		return ""
	}
	return net.JoinHostPort(a.String(), "22")
}

// Checked is a CreateRequest a cloud provider may act on.
type Checked struct {
	// Progress is never nil.
	Progress func(string)
	// Labels carry Label=Name (and whatever else the request set).
	Labels map[string]string
	// Sources are the CIDRs admitted to port 22.
	Sources []netip.Prefix
}

// Check refuses a CreateRequest a cloud must not be sent (a bad name or label,
// user-data that is too big or holds a secret, a bad ssh_from), before
// any API call.
func Check(req provisioning.CreateRequest, maxUserData int, provider, token string, sshFrom []string) (Checked, error) {
	c := Checked{Progress: req.Progress, Labels: maps.Clone(req.Labels)}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	if c.Labels == nil {
		c.Labels = provisioning.Labels(req.Name, "")
	}
	if err := checkLabels(req.Name, c.Labels); err != nil {
		return c, err
	}
	if err := CheckUserData(req.UserData, maxUserData, provider, token); err != nil {
		return c, err
	}
	var err error
	if c.Sources, err = SSHSources(sshFrom); err != nil {
		return c, err
	}
	return c, nil
}

// CheckSweep checks what a Sweep was asked for and returns its labels: a
// shed name, and labels that carry it. Hetzner turns the labels into a
// label selector, so a value may hold only what a label value may.
func CheckSweep(req provisioning.SweepRequest) (map[string]string, error) {
	if err := checkLabels(req.Name, req.Labels); err != nil {
		return nil, err
	}
	return maps.Clone(req.Labels), nil
}

// checkLabels says whether labels are name's: a valid shed name, carried
// under provisioning.Label, and every value one that both APIs take, so
// that what a create tags a sweep can find by the same labels.
func checkLabels(name string, labels map[string]string) error {
	if !config.ValidShedName(name) {
		return fmt.Errorf("%q is not a shed name", name)
	}
	if labels[provisioning.Label] != name {
		return fmt.Errorf("the labels must carry %s=%s", provisioning.Label, name)
	}
	for k, v := range labels {
		if !labelValue.MatchString(v) {
			return fmt.Errorf("label %s=%q is not a label value", k, v)
		}
	}
	return nil
}

var labelValue = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

// Explained is an API error told in the provider's words plus what to
// do; it unwraps to the client library's error.
type Explained struct {
	Msg string
	Err error
}

func (e *Explained) Error() string { return e.Msg }
func (e *Explained) Unwrap() error { return e.Err }

// Overrides are a provider's test-only knobs, for tests that run spuff-app
// against a fake API: a short create timeout (so a machine that never
// becomes ready fails in seconds) and the port its sshd is reached on (a
// test's VM forwards a loopback port, not 22). They are read from
// PREFIX_READY_TIMEOUT and PREFIX_SSH_PORT, where PREFIX is the URL
// override's name without _API_URL, and honoured only beside that
// override: a real account always gets the provider's limit and port 22.
type Overrides struct {
	// ReadyTimeout is 0 for the provider's own limit.
	ReadyTimeout time.Duration
	// SSHPort is "" for 22.
	SSHPort string
}

// TestOverrides reads the Overrides of the provider whose URL override is
// urlEnv (SPUFF_DIGITALOCEAN_API_URL → SPUFF_DIGITALOCEAN_READY_TIMEOUT,
// SPUFF_DIGITALOCEAN_SSH_PORT).
func TestOverrides(getenv func(string) string, urlEnv string) (Overrides, error) {
	prefix := strings.TrimSuffix(urlEnv, "_API_URL")
	readyVar, portVar := prefix+"_READY_TIMEOUT", prefix+"_SSH_PORT"
	ready, port := strings.TrimSpace(getenv(readyVar)), strings.TrimSpace(getenv(portVar))
	var o Overrides
	if ready == "" && port == "" {
		return o, nil
	}
	if strings.TrimSpace(getenv(urlEnv)) == "" {
		return o, fmt.Errorf("cloudapi: %s and %s are for tests against a fake API and need %s; unset them", readyVar, portVar, urlEnv)
	}
	if ready != "" {
		d, err := time.ParseDuration(ready)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("cloudapi: %s=%q is not a duration like 5s", readyVar, ready)
		}
		o.ReadyTimeout = d
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return o, fmt.Errorf("cloudapi: %s=%q is not a port", portVar, port)
		}
		o.SSHPort = strconv.Itoa(n)
	}
	return o, nil
}

// Addr applies the SSH port override to a machine's host:port.
func (o Overrides) Addr(m provisioning.Machine) provisioning.Machine {
	if o.SSHPort == "" || m.SSHAddr == "" {
		return m
	}
	if host, _, err := net.SplitHostPort(m.SSHAddr); err == nil {
		m.SSHAddr = net.JoinHostPort(host, o.SSHPort)
	}
	return m
}

// Poll is how often a provider polling every poll asks when its create
// timeout is ready: at most a tenth of it, so a short test limit is not
// spent in one sleep.
func Poll(poll, ready time.Duration) time.Duration {
	return max(min(poll, ready/10), 10*time.Millisecond)
}
