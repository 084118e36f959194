// Package hetzner makes sheds as Hetzner Cloud servers (hcloud-go), each
// behind its own cloud firewall that admits only ssh, with the API token
// read from the host's environment and sent nowhere but the API's
// Authorization header.
//
// What it makes for a shed, each labelled so Delete finds it from the
// server's ID alone, even after the server is gone:
//   - a firewall admitting tcp/22 from ssh_from (anywhere when empty),
//     applied in the create request so the server never runs without it;
//   - the developer's login key, only when the project does not have it
//     (a server made without a key gets a root password);
//   - the server, labelled spuff=NAME and spuff-owner=OWNER.
//
// Once the server exists, the firewall and a key spuff registered get the
// label spuff-server=ID. Delete also removes a firewall and key with the
// server's name and owner labels but no spuff-server label: what a Create
// that never returned left. Create waits for initializing → running with a
// public IPv4 for at most ReadyTimeout; a server that does not get there
// is deleted with the rest, and Create returns its ID beside the error.
//
// SPUFF_HCLOUD_API_URL points the client at another API endpoint. It
// exists for tests against a fake API; it must be https, or http to a
// loopback address, so it cannot carry the token off the host in clear.
// Beside it, and only beside it, the equally test-only SPUFF_HCLOUD_READY_TIMEOUT
// shortens the create timeout and SPUFF_HCLOUD_SSH_PORT replaces port 22 in
// the address spuff dials (the firewall still admits 22 only).
package hetzner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/internal/cloudapi"
)

const (
	name = "hetzner"
	// MaxUserData is Hetzner's cap on a server's user-data.
	MaxUserData = 32 << 10
	// ReadyTimeout bounds initializing → running with an address.
	ReadyTimeout = 5 * time.Minute
	// TokenEnv is the variable the token is read from.
	TokenEnv = "HCLOUD_TOKEN"
	// URLEnv is the test-only override of the API endpoint.
	URLEnv = "SPUFF_HCLOUD_API_URL"
	// ServerLabel marks the firewall and key spuff made for a server.
	ServerLabel = "spuff-server"
	perPage     = 50
)

func init() { provisioning.Register(name, New) }

// Provider is the Hetzner Cloud provider.
type Provider struct {
	provisioning.NoStartStop
	c     *hcloud.Client
	cfg   config.Hetzner
	log   *slog.Logger
	token string
	// poll and ready pace Create's wait and Delete's firewall removal;
	// tests shorten them.
	poll  time.Duration
	ready time.Duration
	// ov are the test-only overrides (cloudapi.TestOverrides).
	ov cloudapi.Overrides
}

var _ provisioning.Provider = (*Provider)(nil)

// New builds the provider from env. It fails, naming HCLOUD_TOKEN, when
// the token is not set.
func New(env provisioning.Env) (provisioning.Provider, error) {
	token, _, err := cloudapi.Token(env.Getenv, "Hetzner Cloud", TokenEnv)
	if err != nil {
		return nil, err
	}
	endpoint, err := cloudapi.BaseURL(env.Getenv, URLEnv, hcloud.Endpoint)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper
	if env.HTTPClient != nil {
		rt = env.HTTPClient.Transport
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{Transport: cloudapi.NewTransport(name, token, rt, log), Timeout: cloudapi.ClientTimeout}
	c := hcloud.NewClient(
		hcloud.WithToken(token),
		hcloud.WithEndpoint(endpoint),
		hcloud.WithHTTPClient(hc),
		hcloud.WithApplication("spuff", ""),
		// The transport retries, honouring Retry-After, and never
		// repeats a POST; hcloud's own retries would.
		hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: 0}),
	)
	cfg := config.Default().Hetzner
	if env.Config != nil {
		cfg = env.Config.Hetzner
	}
	ov, err := cloudapi.TestOverrides(env.Getenv, URLEnv)
	if err != nil {
		return nil, err
	}
	pr := &Provider{c: c, cfg: cfg, log: log, token: token, poll: 3 * time.Second, ready: ReadyTimeout, ov: ov}
	if ov.ReadyTimeout > 0 {
		pr.ready, pr.poll = ov.ReadyTimeout, cloudapi.Poll(pr.poll, ov.ReadyTimeout)
	}
	return pr, nil
}

// Name implements provisioning.Provider.
func (p *Provider) Name() string { return name }

// Capabilities implements provisioning.Provider: a server is ended, not
// stopped, as a powered-off server still bills.
func (p *Provider) Capabilities() provisioning.Capabilities { return provisioning.Capabilities{} }

// Create implements provisioning.Provider.
func (p *Provider) Create(ctx context.Context, req provisioning.CreateRequest) (provisioning.Machine, error) {
	chk, err := cloudapi.Check(req, MaxUserData, "Hetzner Cloud", p.token, p.cfg.SSHFrom)
	if err != nil {
		return provisioning.Machine{}, fmt.Errorf("hetzner: %w", err)
	}
	progress, labels, sources := chk.Progress, chk.Labels, chk.Sources
	cleanup := context.WithoutCancel(ctx)

	progress("finding your ssh key at Hetzner")
	key, registered, err := p.loginKey(ctx, req.Name, req.LoginKey, labels)
	if err != nil {
		return provisioning.Machine{}, err
	}
	dropKey := func() {
		if registered {
			if _, err := p.c.SSHKey.Delete(cleanup, key); err != nil && !hcloud.IsError(err, hcloud.ErrorCodeNotFound) {
				p.log.Warn("hetzner: removing the ssh key spuff registered failed", "key", key.ID, "error", err)
			}
		}
	}

	progress("creating the firewall (ssh only)")
	fw, err := p.firewall(ctx, req.Name, labels, sources)
	if err != nil {
		dropKey()
		return provisioning.Machine{}, p.explain("create the firewall", err)
	}
	dropFirewall := func() {
		if err := p.deleteFirewall(cleanup, fw); err != nil {
			p.log.Warn("hetzner: removing the firewall failed", "firewall", fw.ID, "error", err)
		}
	}

	progress(fmt.Sprintf("creating server %s (%s, %s, %s)", req.Name, p.cfg.Location, p.cfg.ServerType, p.cfg.Image))
	res, _, err := p.c.Server.Create(ctx, hcloud.ServerCreateOpts{
		Name:             req.Name,
		ServerType:       &hcloud.ServerType{Name: p.cfg.ServerType},
		Image:            &hcloud.Image{Name: p.cfg.Image},
		Location:         &hcloud.Location{Name: p.cfg.Location},
		SSHKeys:          []*hcloud.SSHKey{key},
		UserData:         string(req.UserData),
		StartAfterCreate: hcloud.Ptr(true),
		Labels:           labels,
		Firewalls:        []*hcloud.ServerCreateFirewall{{Firewall: hcloud.Firewall{ID: fw.ID}}},
	})
	if err != nil || res.Server == nil {
		dropFirewall()
		dropKey()
		if err == nil {
			err = errors.New("the API returned no server")
		}
		return provisioning.Machine{}, p.explain("create the server", err)
	}
	m := p.ov.Addr(mapServer(res.Server))
	fail := func(what string, err error) (provisioning.Machine, error) {
		cctx, cancel := context.WithTimeout(cleanup, 2*time.Minute)
		defer cancel()
		cerr := p.Delete(cctx, m.ID)
		dropFirewall()
		dropKey()
		if cerr != nil {
			return m, fmt.Errorf("%w; deleting server %s failed too, `spuff down %s` retries: %v", p.explain(what, err), m.ID, req.Name, cerr)
		}
		return m, fmt.Errorf("%w (server %s was deleted)", p.explain(what, err), m.ID)
	}

	// From here on Delete finds the firewall and key by the server's ID.
	mark := maps.Clone(labels)
	mark[ServerLabel] = m.ID
	if _, _, err := p.c.Firewall.Update(ctx, fw, hcloud.FirewallUpdateOpts{Labels: mark}); err != nil {
		return fail("label the firewall", err)
	}
	if registered {
		if _, _, err := p.c.SSHKey.Update(ctx, key, hcloud.SSHKeyUpdateOpts{Labels: mark}); err != nil {
			return fail("label the registered ssh key", err)
		}
	}

	progress("waiting for the server to run")
	ready, err := cloudapi.WaitReady(ctx, func(ctx context.Context) (provisioning.Machine, error) { return p.Get(ctx, m.ID) }, p.poll, p.ready, "server", "running", progress)
	if err != nil {
		return fail("wait for the server", err)
	}
	return ready, nil
}

// loginKey returns the project's key with the login key's fingerprint,
// registering it (labelled) if the project has none.
func (p *Provider) loginKey(ctx context.Context, shed, authorized string, labels map[string]string) (*hcloud.SSHKey, bool, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorized))
	if err != nil {
		return nil, false, fmt.Errorf("hetzner: the login key is not an authorized_keys line: %w", err)
	}
	fp := ssh.FingerprintLegacyMD5(pub)
	k, _, err := p.c.SSHKey.GetByFingerprint(ctx, fp)
	if err != nil {
		return nil, false, p.explain("look up your ssh key", err)
	}
	if k != nil {
		return k, false, nil
	}
	// Key names are unique in a project; the fingerprint keeps two
	// developers' keys for sheds of one name apart.
	nm := "spuff-" + shed + "-" + strings.ReplaceAll(fp, ":", "")[:8]
	k, _, err = p.c.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{
		Name: nm, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), Labels: labels,
	})
	if err != nil {
		// Another `spuff up` may have registered it since the lookup.
		if hcloud.IsError(err, hcloud.ErrorCodeUniquenessError) {
			if again, _, gerr := p.c.SSHKey.GetByFingerprint(ctx, fp); gerr == nil && again != nil {
				return again, false, nil
			}
		}
		return nil, false, p.explain("register your ssh key", err)
	}
	return k, true, nil
}

func (p *Provider) firewall(ctx context.Context, shed string, labels map[string]string, sources []netip.Prefix) (*hcloud.Firewall, error) {
	ips := make([]net.IPNet, 0, len(sources))
	for _, s := range sources {
		_, n, err := net.ParseCIDR(s.String())
		if err != nil {
			return nil, err
		}
		ips = append(ips, *n)
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	res, _, err := p.c.Firewall.Create(ctx, hcloud.FirewallCreateOpts{
		Name:   "spuff-" + shed + "-" + hex.EncodeToString(suffix[:]),
		Labels: labels,
		Rules: []hcloud.FirewallRule{{
			Direction:   hcloud.FirewallRuleDirectionIn,
			Protocol:    hcloud.FirewallRuleProtocolTCP,
			Port:        hcloud.Ptr("22"),
			SourceIPs:   ips,
			Description: hcloud.Ptr("spuff: ssh only"),
		}},
	})
	if err != nil {
		return nil, err
	}
	return res.Firewall, nil
}

// deleteFirewall removes fw, waiting while it is still applied to a
// server that is being deleted.
func (p *Provider) deleteFirewall(ctx context.Context, fw *hcloud.Firewall) error {
	for i := 0; ; i++ {
		_, err := p.c.Firewall.Delete(ctx, fw)
		if err == nil || hcloud.IsError(err, hcloud.ErrorCodeNotFound) {
			return nil
		}
		if !hcloud.IsError(err, hcloud.ErrorCodeResourceInUse, hcloud.ErrorCodeLocked, hcloud.ErrorCodeConflict) || i >= 20 {
			return p.explain("remove firewall "+fw.Name, err)
		}
		if err := cloudapi.Sleep(ctx, p.poll); err != nil {
			return err
		}
	}
}

// Get implements provisioning.Provider.
func (p *Provider) Get(ctx context.Context, id string) (provisioning.Machine, error) {
	n, err := serverID(id)
	if err != nil {
		return provisioning.Machine{}, err
	}
	s, _, err := p.c.Server.GetByID(ctx, n)
	if err != nil {
		return provisioning.Machine{}, p.explain("read server "+id, err)
	}
	if s == nil {
		return provisioning.Machine{}, fmt.Errorf("hetzner: server %s: %w", id, provisioning.ErrNotFound)
	}
	return p.ov.Addr(mapServer(s)), nil
}

// Delete implements provisioning.Provider: the server, its firewall and
// the key spuff registered for it; each already gone is no error.
func (p *Provider) Delete(ctx context.Context, id string) error {
	n, err := serverID(id)
	if err != nil {
		return err
	}
	var errs []error
	sels := []string{ServerLabel + "=" + strconv.FormatInt(n, 10)}
	// A Create that never returned (spuff-app killed while the server was
	// being made) left its firewall and key without the server label:
	// they are found by the server's own labels instead.
	s, _, err := p.c.Server.GetByID(ctx, n)
	if err != nil {
		errs = append(errs, p.explain("read server "+id, err))
	} else if s != nil && s.Labels[provisioning.Label] != "" {
		sels = append(sels, unmarked(s.Labels))
	}
	fws, keys, lerrs := p.labelled(ctx, sels)
	errs = append(errs, lerrs...)
	if _, _, err := p.c.Server.DeleteWithResult(ctx, &hcloud.Server{ID: n}); err != nil && !hcloud.IsError(err, hcloud.ErrorCodeNotFound) {
		errs = append(errs, p.explain("delete server "+id, err))
	}
	errs = append(errs, p.remove(ctx, fws, keys)...)
	return errors.Join(errs...)
}

// labelled lists the firewalls and ssh keys that the label selectors sels
// select.
func (p *Provider) labelled(ctx context.Context, sels []string) ([]*hcloud.Firewall, []*hcloud.SSHKey, []error) {
	var fws []*hcloud.Firewall
	var keys []*hcloud.SSHKey
	var errs []error
	for _, sel := range sels {
		f, err := p.c.Firewall.AllWithOpts(ctx, hcloud.FirewallListOpts{ListOpts: hcloud.ListOpts{LabelSelector: sel, PerPage: perPage}})
		if err != nil {
			errs = append(errs, p.explain("list firewalls", err))
		}
		k, err := p.c.SSHKey.AllWithOpts(ctx, hcloud.SSHKeyListOpts{ListOpts: hcloud.ListOpts{LabelSelector: sel, PerPage: perPage}})
		if err != nil {
			errs = append(errs, p.explain("list ssh keys", err))
		}
		fws, keys = append(fws, f...), append(keys, k...)
	}
	return fws, keys, errs
}

// remove deletes fws and keys; each already gone is no error.
func (p *Provider) remove(ctx context.Context, fws []*hcloud.Firewall, keys []*hcloud.SSHKey) []error {
	var errs []error
	for _, fw := range fws {
		if err := p.deleteFirewall(ctx, fw); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range keys {
		if _, err := p.c.SSHKey.Delete(ctx, k); err != nil && !hcloud.IsError(err, hcloud.ErrorCodeNotFound) {
			errs = append(errs, p.explain("remove ssh key "+k.Name, err))
		}
	}
	return errs
}

var _ provisioning.Sweeper = (*Provider)(nil)

// Sweep implements provisioning.Sweeper: the firewalls and keys that carry
// the shed's name and owner but no server's label, which only a Create
// that died before its server existed leaves.
func (p *Provider) Sweep(ctx context.Context, req provisioning.SweepRequest) error {
	labels, err := cloudapi.CheckSweep(req)
	if err != nil {
		return fmt.Errorf("hetzner: %w", err)
	}
	fws, keys, errs := p.labelled(ctx, []string{unmarked(labels)})
	errs = append(errs, p.remove(ctx, fws, keys)...)
	return errors.Join(errs...)
}

// List implements provisioning.Provider: every server with the spuff label.
func (p *Provider) List(ctx context.Context) ([]provisioning.Machine, error) {
	ss, err := p.c.Server.AllWithOpts(ctx, hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: provisioning.Label, PerPage: perPage}})
	if err != nil {
		return nil, p.explain("list servers", err)
	}
	out := make([]provisioning.Machine, 0, len(ss))
	for _, s := range ss {
		out = append(out, p.ov.Addr(mapServer(s)))
	}
	return out, nil
}

// unmarked selects what a server's Create made before the server existed
// and never marked with ServerLabel: the same shed name and owner.
func unmarked(labels map[string]string) string {
	sel := provisioning.Label + "=" + labels[provisioning.Label]
	if o := labels[provisioning.OwnerLabel]; o != "" {
		sel += "," + provisioning.OwnerLabel + "=" + o
	} else {
		sel += ",!" + provisioning.OwnerLabel
	}
	return sel + ",!" + ServerLabel
}

func serverID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("hetzner: %q is not a server ID: %w", id, provisioning.ErrNotFound)
	}
	return n, nil
}
