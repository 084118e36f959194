// Package digitalocean makes sheds as DigitalOcean droplets (godo), each
// behind its own cloud firewall that admits only ssh, with the API token
// read from the host's environment and sent nowhere but the API's
// Authorization header.
//
// What it makes for a shed, all found again from the droplet's ID alone so
// that Delete can end them even after the droplet is gone:
//   - the droplet, tagged "spuff", "spuff:NAME" and "spuff-owner:OWNER"
//     (DigitalOcean tags are plain strings of letters, digits, colons,
//     dashes and underscores, so a label k=v becomes the tag "k:v", and the
//     bare "spuff" tag lets List find every shed in one paginated call);
//   - a firewall admitting tcp/22 from ssh_from (anywhere when empty), all
//     outbound allowed, made before the droplet and applied to it through
//     a tag of its own, "spuff-fw:NAME:OWNER:NONCE", that the droplet is
//     created with: its sshd never faces the internet unfiltered. It is
//     made as "spuff-NAME" and, once the droplet exists, renamed
//     "spuff-NAME-ID" and given the droplet's ID as well;
//   - the developer's login key, only when the account does not have it
//     (DigitalOcean emails a root password for a droplet made without
//     one), registered as "spuff-NAME" and renamed "spuff-NAME-ID" once
//     the droplet exists (Delete also removes a key of the first name
//     beside the droplet NAME, left by a Create that never returned).
//
// Create waits for the droplet to become active with a public IPv4 (new →
// active) for at most ReadyTimeout; a droplet that does not is destroyed
// with the rest, and Create returns its ID beside the error.
//
// SPUFF_DIGITALOCEAN_API_URL points the client at another API base URL.
// It exists for tests against a fake API; it must be https, or http to a
// loopback address, so it cannot carry the token off the host in clear.
// Beside it, and only beside it, the equally test-only SPUFF_DIGITALOCEAN_READY_TIMEOUT
// shortens the create timeout and SPUFF_DIGITALOCEAN_SSH_PORT replaces port 22 in
// the address spuff dials (the firewall still admits 22 only).
package digitalocean

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"
	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/internal/cloudapi"
)

const (
	name = "digitalocean"
	// MaxUserData is DigitalOcean's cap on a droplet's user-data.
	MaxUserData = 64 << 10
	// ReadyTimeout bounds new → active with an address. Droplets are
	// usually active within a minute or two.
	ReadyTimeout = 5 * time.Minute
	// URLEnv is the test-only override of the API base URL.
	URLEnv     = "SPUFF_DIGITALOCEAN_API_URL"
	defaultURL = "https://api.digitalocean.com/"
	perPage    = 200
)

// TokenEnv are the variables the token is read from, in order.
var TokenEnv = []string{"DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"}

func init() { provisioning.Register(name, New) }

// Provider is the DigitalOcean provider.
type Provider struct {
	provisioning.NoStartStop
	c        *godo.Client
	cfg      config.DigitalOcean
	log      *slog.Logger
	token    string
	tokenVar string
	// poll and ready pace Create's wait; tests shorten them.
	poll  time.Duration
	ready time.Duration
	// ov are the test-only overrides (cloudapi.TestOverrides).
	ov cloudapi.Overrides
}

var _ provisioning.Provider = (*Provider)(nil)

// New builds the provider from env. It fails, naming the variable, when
// no token is set.
func New(env provisioning.Env) (provisioning.Provider, error) {
	token, tokenVar, err := cloudapi.Token(env.Getenv, "DigitalOcean", TokenEnv...)
	if err != nil {
		return nil, err
	}
	base, err := cloudapi.BaseURL(env.Getenv, URLEnv, defaultURL)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(base, "/") {
		base += "/" // godo resolves "v2/…" against it
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
	c, err := godo.New(hc, godo.SetBaseURL(base), godo.SetUserAgent("spuff"))
	if err != nil {
		return nil, fmt.Errorf("digitalocean: %w", err)
	}
	cfg := config.Default().DigitalOcean
	if env.Config != nil {
		cfg = env.Config.DigitalOcean
	}
	ov, err := cloudapi.TestOverrides(env.Getenv, URLEnv)
	if err != nil {
		return nil, err
	}
	pr := &Provider{c: c, cfg: cfg, log: log, token: token, tokenVar: tokenVar, poll: 5 * time.Second, ready: ReadyTimeout, ov: ov}
	if ov.ReadyTimeout > 0 {
		pr.ready, pr.poll = ov.ReadyTimeout, cloudapi.Poll(pr.poll, ov.ReadyTimeout)
	}
	return pr, nil
}

// Name implements provisioning.Provider.
func (p *Provider) Name() string { return name }

// Capabilities implements provisioning.Provider: a droplet is ended, not
// stopped, as a powered-off droplet still bills.
func (p *Provider) Capabilities() provisioning.Capabilities { return provisioning.Capabilities{} }

// Create makes the droplet, its firewall and (if needed) its login key,
// and waits for it to be active. Whatever fails after the droplet exists
// destroys all of it; the Machine with the droplet's ID comes back beside
// the error.
func (p *Provider) Create(ctx context.Context, req provisioning.CreateRequest) (provisioning.Machine, error) {
	chk, err := cloudapi.Check(req, MaxUserData, "DigitalOcean", p.token, p.cfg.SSHFrom)
	if err != nil {
		return provisioning.Machine{}, fmt.Errorf("digitalocean: %w", err)
	}
	progress, labels, sources := chk.Progress, chk.Labels, chk.Sources
	tags, err := Tags(labels)
	if err != nil {
		return provisioning.Machine{}, err
	}

	progress("finding your ssh key at DigitalOcean")
	key, registered, err := p.loginKey(ctx, req.Name, req.LoginKey)
	if err != nil {
		return provisioning.Machine{}, err
	}
	dropKey := func() {
		if registered {
			p.deleteKey(context.WithoutCancel(ctx), key.ID)
		}
	}

	progress("creating the firewall (ssh only)")
	fw, err := p.firewall(ctx, req.Name, labels[provisioning.OwnerLabel], sources)
	if err != nil {
		dropKey()
		return provisioning.Machine{}, err
	}

	progress(fmt.Sprintf("creating droplet %s (%s, %s, %s)", req.Name, p.cfg.Region, p.cfg.Size, p.cfg.Image))
	d, _, err := p.c.Droplets.Create(ctx, &godo.DropletCreateRequest{
		Name:     req.Name,
		Region:   p.cfg.Region,
		Size:     p.cfg.Size,
		Image:    godo.DropletCreateImage{Slug: p.cfg.Image},
		SSHKeys:  []godo.DropletCreateSSHKey{{ID: key.ID}},
		UserData: string(req.UserData),
		Tags:     append(tags, fw.tag),
	})
	if err != nil {
		// Without the API's refusal the droplet may exist all the same
		// (the answer lost, the up cancelled or spuff-app quitting), or
		// come to exist after a listing says none does: it keeps its
		// firewall, which Delete finds through the droplet's tag, and
		// Sweep once no droplet has the tag (`spuff down`).
		if refused(err) {
			p.dropFirewall(context.WithoutCancel(ctx), fw)
		}
		dropKey()
		return provisioning.Machine{}, p.explain("create the droplet", err)
	}
	m := p.ov.Addr(mapDroplet(*d))
	fail := func(what string, err error) (provisioning.Machine, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		cerr := p.Delete(cctx, m.ID)
		if cerr == nil {
			// Delete finds it through the droplet's tag; this is in
			// case it could not read the droplet.
			p.dropFirewall(cctx, fw)
		}
		dropKey()
		if cerr != nil {
			return m, fmt.Errorf("%w; destroying droplet %s failed too, `spuff down %s` retries: %v", p.explain(what, err), m.ID, req.Name, cerr)
		}
		return m, fmt.Errorf("%w (droplet %s was destroyed)", p.explain(what, err), m.ID)
	}

	// Named for the droplet, the firewall is found by its ID even when the
	// droplet, and with it the tag's only holder, is gone.
	fw.req.Name, fw.req.DropletIDs = resourceName(req.Name, d.ID), []int{d.ID}
	if _, _, err := p.c.Firewalls.Update(ctx, fw.id, &fw.req); err != nil {
		return fail("name the firewall", err)
	}
	if registered {
		if _, _, err := p.c.Keys.UpdateByID(ctx, key.ID, &godo.KeyUpdateRequest{Name: resourceName(req.Name, d.ID)}); err != nil {
			return fail("name the registered ssh key", err)
		}
		registered = false // now found by name, so Delete removes it
	}

	progress("waiting for the droplet to become active")
	ready, err := cloudapi.WaitReady(ctx, func(ctx context.Context) (provisioning.Machine, error) { return p.Get(ctx, m.ID) }, p.poll, p.ready, "droplet", "active", progress)
	if err != nil {
		return fail("wait for the droplet", err)
	}
	return ready, nil
}

// loginKey returns the account's key with the login key's fingerprint,
// registering it if the account has none; registered says spuff made it.
func (p *Provider) loginKey(ctx context.Context, shed, authorized string) (godo.Key, bool, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorized))
	if err != nil {
		return godo.Key{}, false, fmt.Errorf("digitalocean: the login key is not an authorized_keys line: %w", err)
	}
	fp := ssh.FingerprintLegacyMD5(pub)
	k, resp, err := p.c.Keys.GetByFingerprint(ctx, fp)
	if err == nil && k != nil {
		return *k, false, nil
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		return godo.Key{}, false, p.explain("look up your ssh key", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	k, resp, err = p.c.Keys.Create(ctx, &godo.KeyCreateRequest{Name: pendingName(shed), PublicKey: line})
	if err != nil {
		// Another `spuff up` may have registered it since the lookup.
		if resp != nil && resp.StatusCode == http.StatusUnprocessableEntity {
			if again, _, gerr := p.c.Keys.GetByFingerprint(ctx, fp); gerr == nil && again != nil {
				return *again, false, nil
			}
		}
		return godo.Key{}, false, p.explain("register your ssh key", err)
	}
	return *k, true, nil
}

func (p *Provider) deleteKey(ctx context.Context, id int) {
	if _, err := p.c.Keys.DeleteByID(ctx, id); err != nil && !notFound(err) {
		p.log.Warn("digitalocean: removing the ssh key spuff registered failed", "key", id, "error", err)
	}
}

// shedFirewall is the firewall Create makes before the droplet, and the
// request it was made with (a PUT takes the whole firewall again).
type shedFirewall struct {
	id, tag string
	req     godo.FirewallRequest
}

// firewall makes the shed's tag and the firewall applied to it, which
// admits tcp/22 from sources and lets every outbound packet out (a
// DigitalOcean firewall without outbound rules blocks all outbound
// traffic). The API takes only a tag that exists, so the tag comes first;
// a firewall the API refuses takes the tag with it.
func (p *Provider) firewall(ctx context.Context, shed, owner string, sources []netip.Prefix) (shedFirewall, error) {
	fw := shedFirewall{tag: firewallTag(shed, owner, rand.Text()[:10])}
	if _, _, err := p.c.Tags.Create(ctx, &godo.TagCreateRequest{Name: fw.tag}); err != nil {
		return fw, p.explain("create the firewall's tag", err)
	}
	from := make([]string, len(sources))
	for i, s := range sources {
		from[i] = s.String()
	}
	all := &godo.Destinations{Addresses: []string{"0.0.0.0/0", "::/0"}}
	fw.req = godo.FirewallRequest{
		Name:         pendingName(shed),
		InboundRules: []godo.InboundRule{{Protocol: "tcp", PortRange: "22", Sources: &godo.Sources{Addresses: from}}},
		OutboundRules: []godo.OutboundRule{
			{Protocol: "tcp", PortRange: "0", Destinations: all},
			{Protocol: "udp", PortRange: "0", Destinations: all},
			{Protocol: "icmp", Destinations: all},
		},
		DropletIDs: []int{},
		Tags:       []string{fw.tag},
	}
	made, _, err := p.c.Firewalls.Create(ctx, &fw.req)
	if err != nil {
		// A firewall made all the same is found by its tag, by Sweep.
		if refused(err) {
			p.deleteTag(context.WithoutCancel(ctx), fw.tag)
		}
		return fw, p.explain("create the firewall", err)
	}
	fw.id = made.ID
	return fw, nil
}

// dropFirewall removes a firewall no droplet was made behind, and then its
// tag, by which alone Sweep could find the firewall again.
func (p *Provider) dropFirewall(ctx context.Context, fw shedFirewall) {
	if _, err := p.c.Firewalls.Delete(ctx, fw.id); err != nil && !notFound(err) {
		p.log.Warn("digitalocean: removing the firewall failed", "firewall", fw.id, "error", err)
		return
	}
	p.deleteTag(ctx, fw.tag)
}

func (p *Provider) deleteTag(ctx context.Context, tag string) {
	if _, err := p.c.Tags.Delete(ctx, tag); err != nil && !notFound(err) {
		p.log.Warn("digitalocean: removing the firewall's tag failed", "tag", tag, "error", err)
	}
}

// Get implements provisioning.Provider.
func (p *Provider) Get(ctx context.Context, id string) (provisioning.Machine, error) {
	n, err := dropletID(id)
	if err != nil {
		return provisioning.Machine{}, err
	}
	d, _, err := p.c.Droplets.Get(ctx, n)
	if err != nil {
		if notFound(err) {
			return provisioning.Machine{}, fmt.Errorf("digitalocean: droplet %s: %w", id, provisioning.ErrNotFound)
		}
		return provisioning.Machine{}, p.explain("read droplet "+id, err)
	}
	return p.ov.Addr(mapDroplet(*d)), nil
}

// Delete implements provisioning.Provider: the droplet, its firewall and
// the firewall's tag, and the key spuff registered for it; each already
// gone is no error.
func (p *Provider) Delete(ctx context.Context, id string) error {
	n, err := dropletID(id)
	if err != nil {
		return err
	}
	// The droplet is read first: a key registered by a Create that never
	// returned (spuff-app killed while the droplet was being made) still
	// has its first name, spuff-NAME, and the droplet's firewall tag
	// finds a firewall not yet named for it. Nothing is removed unless
	// the droplet is read and then destroyed: a droplet left running
	// keeps its firewall, and a retry finds all of it again.
	var unnamed string
	var tags []string
	d, _, err := p.c.Droplets.Get(ctx, n)
	switch {
	case err == nil && d != nil:
		if d.Name != "" {
			unnamed = pendingName(d.Name)
		}
		tags = firewallTags(d.Tags)
	case err != nil && !notFound(err):
		return p.explain("read droplet "+id, err)
	}
	if _, err := p.c.Droplets.Delete(ctx, n); err != nil && !notFound(err) {
		return p.explain("destroy droplet "+id, err)
	}
	suffix := "-" + id
	errs := p.removeFirewalls(ctx, tags, func(fw godo.Firewall) bool {
		return ours(fw.Name, suffix) || (strings.HasPrefix(fw.Name, "spuff-") && slices.Contains(fw.DropletIDs, n))
	})
	keys, err := p.keys(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, k := range keys {
		if ours(k.Name, suffix) || (unnamed != "" && k.Name == unnamed) {
			if _, err := p.c.Keys.DeleteByID(ctx, k.ID); err != nil && !notFound(err) {
				errs = append(errs, p.explain("remove ssh key "+k.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

var _ provisioning.Sweeper = (*Provider)(nil)

// Sweep implements provisioning.Sweeper: what a Create that died before
// its droplet existed leaves. That is the shed's firewall tag, found by
// the shed's name and owner and kept while any droplet carries it, with
// the firewalls applied through it; and the login key the Create
// registered and never renamed, found by the login key's fingerprint and
// kept unless it still has the shed's pending name, so another
// developer's key, or one a droplet was named for, is never removed.
func (p *Provider) Sweep(ctx context.Context, req provisioning.SweepRequest) error {
	labels, err := cloudapi.CheckSweep(req)
	if err != nil {
		return fmt.Errorf("digitalocean: %w", err)
	}
	errs := p.sweepFirewalls(ctx, req.Name, labels[provisioning.OwnerLabel])
	if err := p.sweepKey(ctx, req); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sweepFirewalls removes the firewall tags of shed and owner that no
// droplet carries, and the firewalls applied through them.
func (p *Provider) sweepFirewalls(ctx context.Context, shed, owner string) []error {
	var left []string
	err := pages(ctx, func(opt *godo.ListOptions) (*godo.Response, error) {
		ts, resp, err := p.c.Tags.List(ctx, opt)
		for _, t := range ts {
			if firewallTagOf(t.Name, shed, owner) {
				left = append(left, t.Name)
			}
		}
		return resp, err
	})
	if err != nil {
		return []error{p.explain("list tags", err)}
	}
	if len(left) == 0 {
		return nil
	}
	var errs []error
	var orphans []string
	for _, t := range left {
		ds, _, err := p.c.Droplets.ListByTag(ctx, t, &godo.ListOptions{PerPage: 1})
		switch {
		case err != nil:
			errs = append(errs, p.explain("list the droplets tagged "+t, err))
		case len(ds) == 0:
			orphans = append(orphans, t)
		}
	}
	if len(orphans) == 0 {
		return errs
	}
	return append(errs, p.removeFirewalls(ctx, orphans, func(godo.Firewall) bool { return false })...)
}

// removeFirewalls removes the firewalls on tags, and those that also
// match, then those tags and any other firewall tag they carried. A tag
// stays while a firewall on it may (its removal failed, or the firewalls
// could not be listed): it is how that firewall is found again.
func (p *Provider) removeFirewalls(ctx context.Context, tags []string, also func(godo.Firewall) bool) []error {
	fws, err := p.firewalls(ctx)
	if err != nil {
		return []error{err}
	}
	var errs []error
	var stay []string
	for _, fw := range fws {
		if !also(fw) && !slices.ContainsFunc(fw.Tags, func(t string) bool { return slices.Contains(tags, t) }) {
			continue
		}
		if _, err := p.c.Firewalls.Delete(ctx, fw.ID); err != nil && !notFound(err) {
			errs = append(errs, p.explain("remove firewall "+fw.Name, err))
			stay = append(stay, fw.Tags...)
			continue
		}
		tags = append(tags, firewallTags(fw.Tags)...)
	}
	slices.Sort(tags)
	for _, t := range slices.Compact(tags) {
		if slices.Contains(stay, t) {
			continue
		}
		if _, err := p.c.Tags.Delete(ctx, t); err != nil && !notFound(err) {
			errs = append(errs, p.explain("remove tag "+t, err))
		}
	}
	return errs
}

// sweepKey removes the login key a Create registered and never renamed.
func (p *Provider) sweepKey(ctx context.Context, req provisioning.SweepRequest) error {
	if req.LoginKey == "" {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.LoginKey))
	if err != nil {
		return fmt.Errorf("digitalocean: the login key is not an authorized_keys line: %w", err)
	}
	k, _, err := p.c.Keys.GetByFingerprint(ctx, ssh.FingerprintLegacyMD5(pub))
	switch {
	case err != nil && notFound(err):
		return nil
	case err != nil:
		return p.explain("look up your ssh key", err)
	case k == nil || k.Name != pendingName(req.Name):
		return nil
	}
	if _, err := p.c.Keys.DeleteByID(ctx, k.ID); err != nil && !notFound(err) {
		return p.explain("remove ssh key "+k.Name, err)
	}
	return nil
}

// List implements provisioning.Provider: every droplet tagged "spuff".
func (p *Provider) List(ctx context.Context) ([]provisioning.Machine, error) {
	var out []provisioning.Machine
	err := pages(ctx, func(opt *godo.ListOptions) (*godo.Response, error) {
		ds, resp, err := p.c.Droplets.ListByTag(ctx, provisioning.Label, opt)
		for _, d := range ds {
			out = append(out, p.ov.Addr(mapDroplet(d)))
		}
		return resp, err
	})
	if err != nil {
		return nil, p.explain("list droplets", err)
	}
	return out, nil
}

func (p *Provider) firewalls(ctx context.Context) ([]godo.Firewall, error) {
	var out []godo.Firewall
	err := pages(ctx, func(opt *godo.ListOptions) (*godo.Response, error) {
		fs, resp, err := p.c.Firewalls.List(ctx, opt)
		out = append(out, fs...)
		return resp, err
	})
	if err != nil {
		return nil, p.explain("list firewalls", err)
	}
	return out, nil
}

func (p *Provider) keys(ctx context.Context) ([]godo.Key, error) {
	var out []godo.Key
	err := pages(ctx, func(opt *godo.ListOptions) (*godo.Response, error) {
		ks, resp, err := p.c.Keys.List(ctx, opt)
		out = append(out, ks...)
		return resp, err
	})
	if err != nil {
		return nil, p.explain("list ssh keys", err)
	}
	return out, nil
}

// maxPages bounds a listing, so an API that always says "next" cannot
// keep spuff paging forever.
const maxPages = 100

// pages calls list for each page until the links say it was the last.
func pages(ctx context.Context, list func(*godo.ListOptions) (*godo.Response, error)) error {
	opt := &godo.ListOptions{Page: 1, PerPage: perPage}
	for range maxPages {
		resp, err := list(opt)
		if err != nil {
			return err
		}
		if resp == nil || resp.Links == nil || resp.Links.IsLastPage() {
			return nil
		}
		cur, err := resp.Links.CurrentPage()
		if err != nil || cur < opt.Page {
			cur = opt.Page
		}
		opt = &godo.ListOptions{Page: cur + 1, PerPage: perPage}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("digitalocean: more than %d pages of %d; giving up", maxPages, perPage)
}

func resourceName(shed string, id int) string { return "spuff-" + shed + "-" + strconv.Itoa(id) }

// pendingName is a registered key's and a firewall's name until the
// droplet exists.
func pendingName(shed string) string { return "spuff-" + shed }

func ours(name, suffix string) bool {
	return strings.HasPrefix(name, "spuff-") && strings.HasSuffix(name, suffix)
}

func dropletID(id string) (int, error) {
	n, err := strconv.Atoi(id)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("digitalocean: %q is not a droplet ID: %w", id, provisioning.ErrNotFound)
	}
	return n, nil
}

func notFound(err error) bool {
	var e *godo.ErrorResponse
	return errors.As(err, &e) && e.Response != nil && e.Response.StatusCode == http.StatusNotFound
}

// refused says whether err is the API's 4xx answer, after which the
// request made nothing.
func refused(err error) bool {
	var e *godo.ErrorResponse
	return errors.As(err, &e) && e.Response != nil && e.Response.StatusCode >= 400 && e.Response.StatusCode < 500
}
