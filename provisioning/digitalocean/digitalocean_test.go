package digitalocean

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/cloudinit"
	"github.com/spuff-dev/spuff/provisioning/digitalocean/dofake"
	"github.com/spuff-dev/spuff/provisioning/internal/cloudfake"
)

type fixture struct {
	p      *Provider
	fake   *dofake.Server
	token  string
	logs   *bytes.Buffer
	key    string // the developer's public key
	busKey string
}

func setup(t *testing.T, tune func(*config.Config, map[string]string)) *fixture {
	t.Helper()
	f := &fixture{token: cloudfake.Token(t, "dop_v1_"), logs: &bytes.Buffer{}, key: cloudfake.LoginKey(t), busKey: cloudfake.LoginKey(t)}
	f.fake = dofake.New(t, f.token)
	cfg := config.Default()
	env := map[string]string{"DIGITALOCEAN_TOKEN": f.token, URLEnv: f.fake.URL}
	if tune != nil {
		tune(cfg, env)
	}
	p, err := New(provisioning.Env{
		Config: cfg,
		Getenv: func(k string) string { return env[k] },
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.p = p.(*Provider)
	f.p.poll = 10 * time.Millisecond
	t.Cleanup(func() {
		if v := f.fake.Violations(); len(v) > 0 {
			t.Errorf("the fake API saw: %v", v)
		}
		if strings.Contains(f.logs.String(), f.token) {
			t.Error("the token is in spuff's log")
		}
	})
	return f
}

// request is what the Manager sends: the one user-data every provider
// boots with, rendered by provisioning/cloudinit.
func (f *fixture) request(name string) provisioning.CreateRequest {
	ud, err := cloudinit.Render(cloudinit.Params{Hostname: name, User: "dev", LoginKeys: []string{f.key}, BusKey: f.busKey})
	if err != nil {
		panic(err)
	}
	return provisioning.CreateRequest{Name: name, Labels: provisioning.Labels(name, "alice-laptop"), UserData: ud, LoginKey: f.key}
}

// left says what the fake still holds of a shed's; "" when nothing. The
// label tags ("spuff", "spuff:NAME") stay: other sheds share them.
func (f *fixture) left() string {
	d, fw, k, tags := f.fake.Droplets(), f.fake.Firewalls(), f.fake.Keys(), firewallTags(f.fake.Tags())
	if len(d)+len(fw)+len(k)+len(tags) == 0 {
		return ""
	}
	return fmt.Sprintf("droplets %v, firewalls %v, keys %v, tags %q", d, fw, k, tags)
}

func (f *fixture) sent(method, path string) []dofake.Request {
	var out []dofake.Request
	for _, r := range f.fake.Requests() {
		if r.Method == method && strings.TrimSuffix(r.Path, "/") == path {
			out = append(out, r)
		}
	}
	return out
}

func TestCreateAndDelete(t *testing.T) {
	f := setup(t, func(c *config.Config, _ map[string]string) {
		c.DigitalOcean.Region, c.DigitalOcean.Size, c.DigitalOcean.Image = "ams3", "s-1vcpu-2gb", "debian-12-x64"
	})
	f.fake.ActiveAfter = 2
	var steps []string
	req := f.request("demo")
	req.Progress = func(s string) { steps = append(steps, s) }
	m, err := f.p.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(steps, "\n"), f.token) {
		t.Error("a progress step, shown on the terminal, holds the token")
	}
	if m.State != provisioning.Running || m.SSHAddr != "203.0.113.10:22" || m.Name != "demo" || m.Labels[provisioning.OwnerLabel] != "alice-laptop" {
		t.Fatalf("Create = %+v", m)
	}
	if !slices.Contains(steps, "droplet new") || !slices.Contains(steps, "droplet active") {
		t.Errorf("progress did not follow new → active: %q", steps)
	}

	posts := f.sent("POST", "/v2/droplets")
	if len(posts) != 1 {
		t.Fatalf("%d droplet creates, want 1", len(posts))
	}
	var body struct {
		Name, Region, Size, Image string
		SSHKeys                   []int    `json:"ssh_keys"`
		Tags                      []string `json:"tags"`
		UD                        string   `json:"user_data"`
	}
	if err := json.Unmarshal(posts[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Name != "demo" || body.Region != "ams3" || body.Size != "s-1vcpu-2gb" || body.Image != "debian-12-x64" {
		t.Errorf("droplet request = %s", posts[0].Body)
	}
	if len(body.Tags) != 4 || !firewallTagOf(body.Tags[3], "demo", "alice-laptop") {
		t.Fatalf("tags = %q, want the labels' and the firewall's last", body.Tags)
	}
	fwTag := body.Tags[3]
	if want := []string{"spuff", "spuff:demo", "spuff-owner:alice-laptop", fwTag}; !slices.Equal(body.Tags, want) {
		t.Errorf("tags = %q, want %q", body.Tags, want)
	}
	if _, ok := m.Labels[fwTagKey]; ok {
		t.Errorf("the firewall's tag is read back as a label: %v", m.Labels)
	}
	// The firewall is there before the droplet, applied through the tag
	// the droplet is made with; the fake also flags a droplet made with
	// no firewall covering it (Violations, checked at cleanup).
	var order []string
	for _, r := range f.fake.Requests() {
		if r.Method != "GET" {
			order = append(order, r.Method+" "+r.Path)
		}
	}
	if want := []string{"POST /v2/account/keys", "POST /v2/tags", "POST /v2/firewalls", "POST /v2/droplets"}; len(order) < 4 || !slices.Equal(order[:4], want) {
		t.Errorf("requests = %q, want them to begin %q", order, want)
	}
	if body.UD != string(req.UserData) || strings.Contains(body.UD, "PRIVATE KEY") || strings.Contains(body.UD, f.token) {
		t.Errorf("user_data sent = %q", body.UD)
	}
	keys := f.fake.Keys()
	if len(keys) != 1 || len(body.SSHKeys) != 1 || body.SSHKeys[0] != keys[0].ID {
		t.Fatalf("ssh_keys = %v, account keys = %+v", body.SSHKeys, keys)
	}
	if want := "spuff-demo-" + m.ID; keys[0].Name != want {
		t.Errorf("the registered key is named %q, want %q", keys[0].Name, want)
	}

	fws := f.fake.Firewalls()
	if len(fws) != 1 {
		t.Fatalf("%d firewalls, want 1", len(fws))
	}
	fw := fws[0]
	if fw.Name != "spuff-demo-"+m.ID || !slices.Equal(fw.DropletIDs, []int{mustAtoi(t, m.ID)}) || !slices.Equal(fw.Tags, []string{fwTag}) {
		t.Errorf("firewall = %+v", fw)
	}
	if len(fw.InboundRules) != 1 {
		t.Fatalf("inbound rules = %s", fw.InboundRules)
	}
	var in struct {
		Protocol, Ports string
		Sources         struct{ Addresses []string }
	}
	_ = json.Unmarshal(fw.InboundRules[0], &in)
	if in.Protocol != "tcp" || in.Ports != "22" || !slices.Equal(in.Sources.Addresses, []string{"0.0.0.0/0", "::/0"}) {
		t.Errorf("inbound rule = %s", fw.InboundRules[0])
	}
	if len(fw.OutboundRules) == 0 {
		t.Error("no outbound rules: a DigitalOcean firewall would block all outbound traffic")
	}

	// The token went only in the Authorization header (the fake's
	// Violations, checked at cleanup), and never into the user-data.
	for _, r := range f.fake.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			t.Errorf("%s %s without the token", r.Method, r.Path)
		}
	}

	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	if l := f.left(); l != "" {
		t.Errorf("left after Delete: %s", l)
	}
	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Errorf("a second Delete = %v, want nil (404 is already gone)", err)
	}
	if _, err := f.p.Get(context.Background(), m.ID); !errors.Is(err, provisioning.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	n, err := dropletID(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateReusesTheAccountKey(t *testing.T) {
	f := setup(t, func(c *config.Config, _ map[string]string) {
		c.DigitalOcean.SSHFrom = []string{"198.51.100.7/24", "2001:db8::/32"}
	})
	k := f.fake.AddKey("laptop", f.key)
	m, err := f.p.Create(context.Background(), f.request("demo"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.sent("POST", "/v2/account/keys")); n != 0 {
		t.Errorf("registered a key the account has (%d POSTs)", n)
	}
	var body struct {
		SSHKeys []int `json:"ssh_keys"`
	}
	_ = json.Unmarshal(f.sent("POST", "/v2/droplets")[0].Body, &body)
	if !slices.Equal(body.SSHKeys, []int{k.ID}) {
		t.Errorf("ssh_keys = %v, want [%d]", body.SSHKeys, k.ID)
	}
	var in struct{ Sources struct{ Addresses []string } }
	_ = json.Unmarshal(f.fake.Firewalls()[0].InboundRules[0], &in)
	if want := []string{"198.51.100.0/24", "2001:db8::/32"}; !slices.Equal(in.Sources.Addresses, want) {
		t.Errorf("ssh sources = %v, want %v", in.Sources.Addresses, want)
	}
	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	if ks := f.fake.Keys(); len(ks) != 1 || ks[0].Name != "laptop" {
		t.Errorf("Delete touched a key spuff did not register: %+v", ks)
	}
}

func TestCreateFailingHalfWayLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tune    func(*fixture)
		want    string
		droplet bool // whether a droplet was made, and its ID returned
		// sweep: a 5xx may have made the firewall all the same, so its
		// tag stays for Sweep (`spuff down`) to find it by.
		sweep bool
	}{
		{"firewall refused", func(f *fixture) { f.fake.FailFirewall = 422 }, "Firewall limit exceeded", false, false},
		{"firewall 500", func(f *fixture) { f.fake.FailFirewall = 500 }, "try again later", false, true},
		{"droplet refused", func(f *fixture) { f.p.cfg.Region = "nowhere1" }, "Region is not available", false, false},
		{"never active", func(f *fixture) { f.fake.NeverActive = true; f.p.ready = 150 * time.Millisecond }, "not active with a public IPv4 within", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, nil)
			tc.tune(f)
			m, err := f.p.Create(context.Background(), f.request("demo"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create = %v, want an error saying %q", err, tc.want)
			}
			if tc.droplet && m.ID == "" {
				t.Error("the failed Create did not return the droplet's ID for the state row")
			}
			if !tc.droplet && (m.ID != "" || len(f.sent("POST", "/v2/droplets")) > 1) {
				t.Errorf("Create = %+v after %d droplet creates; want none made", m, len(f.sent("POST", "/v2/droplets")))
			}
			if tc.sweep {
				if len(firewallTags(f.fake.Tags())) != 1 {
					t.Errorf("tags %q: want the firewall's kept for Sweep", f.fake.Tags())
				}
				if err := f.p.Sweep(context.Background(), provisioning.SweepRequest{Name: "demo", Labels: provisioning.Labels("demo", "alice-laptop")}); err != nil {
					t.Fatal(err)
				}
			}
			if l := f.left(); l != "" {
				t.Errorf("left behind: %s", l)
			}
			if strings.Contains(err.Error(), f.token) {
				t.Error("the error holds the token")
			}
		})
	}
}

func TestCreateCancelledDestroysTheDroplet(t *testing.T) {
	f := setup(t, nil)
	f.fake.NeverActive = true
	ctx, cancel := context.WithCancel(context.Background())
	req := f.request("demo")
	req.Progress = func(s string) {
		if s == "droplet new" {
			cancel()
		}
	}
	m, err := f.p.Create(ctx, req)
	if !errors.Is(err, context.Canceled) || m.ID == "" {
		t.Fatalf("Create = %+v, %v; want the ID and context.Canceled", m, err)
	}
	if l := f.left(); l != "" {
		t.Errorf("a cancelled Create left %s", l)
	}
}

func TestListPagesAndFindsOrphans(t *testing.T) {
	f := setup(t, nil)
	f.fake.PerPageCap = 2
	for i := range 5 {
		name := fmt.Sprintf("shed-%d", i)
		f.fake.AddDroplet(dofake.Droplet{Name: name, Tags: []string{"spuff", "spuff:" + name, "spuff-owner:bob"}})
	}
	f.fake.AddDroplet(dofake.Droplet{Name: "not-ours", Tags: []string{"web"}})
	ms, err := f.p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
		if m.Labels[provisioning.OwnerLabel] != "bob" || m.State != provisioning.Running || m.SSHAddr == "" {
			t.Errorf("listed %+v", m)
		}
	}
	if want := []string{"shed-0", "shed-1", "shed-2", "shed-3", "shed-4"}; !slices.Equal(names, want) {
		t.Errorf("List = %v, want %v", names, want)
	}
	var pages []string
	for _, r := range f.sent("GET", "/v2/droplets") {
		q, _ := url.ParseQuery(r.Query)
		if q.Get("tag_name") != "spuff" {
			t.Errorf("listed with %q, want tag_name=spuff", r.Query)
		}
		pages = append(pages, q.Get("page"))
	}
	if !slices.Equal(pages, []string{"1", "2", "3"}) {
		t.Errorf("pages read = %v, want 1 2 3", pages)
	}
}

// A crash between Create and the Manager's state update leaves a droplet
// no row knows the ID of; List names it by its label, so reconcile finds it.
func TestListRecoversACreateWhoseIDWasLost(t *testing.T) {
	f := setup(t, nil)
	if _, err := f.p.Create(context.Background(), f.request("lost")); err != nil {
		t.Fatal(err)
	}
	ms, err := f.p.List(context.Background())
	if err != nil || len(ms) != 1 || ms[0].Name != "lost" || ms[0].Labels[provisioning.Label] != "lost" {
		t.Fatalf("List = %+v, %v", ms, err)
	}
	if err := f.p.Delete(context.Background(), ms[0].ID); err != nil {
		t.Fatal(err)
	}
	if l := f.left(); l != "" {
		t.Errorf("Delete by the listed ID left %s", l)
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("429 with Retry-After is waited out", func(t *testing.T) {
		f := setup(t, nil)
		id := f.fake.AddDroplet(dofake.Droplet{Name: "a", Tags: []string{"spuff", "spuff:a"}})
		f.fake.Throttle(1, "1")
		if _, err := f.p.Get(context.Background(), fmt.Sprint(id)); err != nil {
			t.Fatal(err)
		}
		rs := f.fake.Requests()
		if len(rs) != 2 {
			t.Fatalf("%d requests, want 2 (one 429, one retry)", len(rs))
		}
		if gap := rs[1].At.Sub(rs[0].At); gap < 900*time.Millisecond {
			t.Errorf("retried after %s, before Retry-After: 1", gap)
		}
	})
	t.Run("retries are bounded", func(t *testing.T) {
		f := setup(t, nil)
		f.fake.Throttle(100, "0")
		_, err := f.p.List(context.Background())
		if err == nil || !strings.Contains(err.Error(), "rate limit") {
			t.Fatalf("List = %v, want a rate-limit error", err)
		}
		if n := len(f.fake.Requests()); n != 5 {
			t.Errorf("%d requests, want 5 (1 + 4 retries)", n)
		}
	})
	t.Run("a Retry-After past the longest wait is not waited", func(t *testing.T) {
		f := setup(t, nil)
		f.fake.Throttle(1, "3600")
		if _, err := f.p.List(context.Background()); err == nil || !strings.Contains(err.Error(), "rate limit") {
			t.Fatalf("List = %v", err)
		}
		if n := len(f.fake.Requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	t.Run("a create is not repeated on a 5xx", func(t *testing.T) {
		f := setup(t, nil)
		f.fake.FailFirewall = 503
		_, _ = f.p.Create(context.Background(), f.request("demo"))
		if n := len(f.sent("POST", "/v2/firewalls")); n != 1 {
			t.Errorf("POST /v2/firewalls sent %d times, want 1", n)
		}
	})
	t.Run("ratelimit-remaining 0 waits for the reset", func(t *testing.T) {
		f := setup(t, nil)
		f.fake.SetRemaining(1) // the next reply says 0 left
		if _, err := f.p.List(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.List(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(f.fake.Requests()); n != 2 {
			t.Errorf("%d requests, want 2 with no 429 spent", n)
		}
	})
}

func TestErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name string
		tune func(*config.Config, map[string]string)
		want string
	}{
		{"bad token", func(_ *config.Config, e map[string]string) { e["DIGITALOCEAN_TOKEN"] = "dop_v1_wrong" }, "check DIGITALOCEAN_TOKEN"},
		{"bad access token", func(_ *config.Config, e map[string]string) {
			e["DIGITALOCEAN_ACCESS_TOKEN"] = "dop_v1_wrong"
			delete(e, "DIGITALOCEAN_TOKEN")
		}, "check DIGITALOCEAN_ACCESS_TOKEN"},
		{"unknown size", func(c *config.Config, _ map[string]string) { c.DigitalOcean.Size = "no-such-size" }, `check digitalocean.size ("no-such-size")`},
		{"unknown region", func(c *config.Config, _ map[string]string) { c.DigitalOcean.Region = "nowhere1" }, `check digitalocean.region ("nowhere1")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, nil)
			f.fake.AddKey("laptop", f.key)
			cfg := config.Default()
			env := map[string]string{"DIGITALOCEAN_TOKEN": f.token, URLEnv: f.fake.URL}
			tc.tune(cfg, env)
			p, err := New(provisioning.Env{Config: cfg, Getenv: func(k string) string { return env[k] }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Create(context.Background(), f.request("demo"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create = %v, want %q", err, tc.want)
			}
			if len(f.fake.Droplets()) != 0 {
				t.Error("a droplet was made")
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "set DIGITALOCEAN_TOKEN or DIGITALOCEAN_ACCESS_TOKEN"},
		{map[string]string{"DIGITALOCEAN_TOKEN": "x\ny"}, "DIGITALOCEAN_TOKEN holds characters"},
		{map[string]string{"DIGITALOCEAN_TOKEN": "t", URLEnv: "http://api.example.com/"}, "loopback"},
		{map[string]string{"DIGITALOCEAN_TOKEN": "t", URLEnv: "ftp://127.0.0.1/"}, "https"},
	} {
		_, err := New(provisioning.Env{Getenv: func(k string) string { return tc.env[k] }})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with %v = %v, want %q", tc.env, err, tc.want)
		}
	}
}

func TestUserDataIsChecked(t *testing.T) {
	f := setup(t, nil)
	for _, tc := range []struct {
		ud   string
		want string
	}{
		{strings.Repeat("a", MaxUserData+1), "at most 64 KiB"},
		{"#cloud-config\n# " + f.token + "\n", "holds the DigitalOcean API token"},
		{"#cloud-config\nwrite_files: [{content: '-----BEGIN OPENSSH PRIVATE KEY-----'}]\n", "holds a private key"},
	} {
		req := f.request("demo")
		req.UserData = []byte(tc.ud)
		_, err := f.p.Create(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create = %v, want %q", err, tc.want)
		}
		if strings.Contains(fmt.Sprint(err), f.token) {
			t.Error("the error repeats the token")
		}
	}
	if n := len(f.fake.Requests()); n != 0 {
		t.Errorf("%d requests sent for refused user-data", n)
	}
}

func TestRegistered(t *testing.T) {
	if !provisioning.Registered("digitalocean") {
		t.Fatal("digitalocean is not registered")
	}
}

// Two `spuff up` racing to register one key: the loser reuses the
// winner's key and does not remove it with its shed.
func TestKeyRegisteredMeanwhileIsReused(t *testing.T) {
	f := setup(t, nil)
	f.fake.RaceKeyCreate = true
	m, err := f.p.Create(context.Background(), f.request("demo"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.sent("POST", "/v2/account/keys")); n != 1 {
		t.Errorf("%d key registrations, want 1", n)
	}
	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	if ks := f.fake.Keys(); len(ks) != 1 || ks[0].Name != "other-laptop" {
		t.Errorf("keys after Delete = %+v, want the other registration kept", ks)
	}
}

// A Create that never returned (spuff-app killed while the droplet was
// being made) left the key it registered under its first name; Delete of
// the droplet, found by reconcile, removes it and no other key.
func TestDeleteRemovesTheKeyOfACreateThatNeverReturned(t *testing.T) {
	f := setup(t, nil)
	f.fake.AddKey("spuff-lost", f.key)
	f.fake.AddKey("spuff-lost-2", f.busKey)
	id := f.fake.AddDroplet(dofake.Droplet{Name: "lost", Tags: []string{"spuff", "spuff:lost"}})
	if err := f.p.Delete(context.Background(), fmt.Sprint(id)); err != nil {
		t.Fatal(err)
	}
	if ks := f.fake.Keys(); len(ks) != 1 || ks[0].Name != "spuff-lost-2" {
		t.Errorf("keys after Delete = %+v, want only spuff-lost-2", ks)
	}
}

// A label becomes the tag "key:value", which DigitalOcean takes up to 255
// characters long.
func TestTagLengthBound(t *testing.T) {
	if _, err := Tags(map[string]string{"k": strings.Repeat("v", 253)}); err != nil {
		t.Errorf("refused a 255-character tag: %v", err)
	}
	if _, err := Tags(map[string]string{"k": strings.Repeat("v", 254)}); err == nil {
		t.Error("accepted a 256-character tag")
	}
}

// A Create that died after registering the login key, before the droplet
// existed, left the key under the shed's pending name. Sweep removes that
// key, found by the login key's fingerprint, and no other: not another
// developer's key pending for a shed of the same name, not a key named
// for a droplet, and nothing without a login key to look for.
func TestSweepRemovesTheKeyOfACreateThatDiedBeforeItsDroplet(t *testing.T) {
	f := setup(t, nil)
	ctx := context.Background()
	other := cloudfake.LoginKey(t)
	f.fake.AddKey("spuff-lost", f.busKey)
	f.fake.AddKey("spuff-lost", other)
	f.fake.AddKey("spuff-keep-4242", f.key)
	sweep := func(name, key string) {
		t.Helper()
		if err := f.p.Sweep(ctx, provisioning.SweepRequest{Name: name, Labels: provisioning.Labels(name, "alice-laptop"), LoginKey: key}); err != nil {
			t.Fatalf("Sweep %s: %v", name, err)
		}
	}
	sweep("lost", "")
	sweep("keep", f.key)
	sweep("lost", f.key)
	if n := len(f.fake.Keys()); n != 3 {
		t.Fatalf("keys after Sweeps that must remove nothing: %+v", f.fake.Keys())
	}
	sweep("lost", f.busKey)
	ks := f.fake.Keys()
	if len(ks) != 2 {
		t.Fatalf("keys after Sweep = %+v, want the other developer's and the droplet's", ks)
	}
	for _, k := range ks {
		if k.PublicKey == f.busKey {
			t.Errorf("the lost Create's key is still there: %+v", k)
		}
	}
	sweep("lost", f.busKey) // already gone
	if err := f.p.Sweep(ctx, provisioning.SweepRequest{Name: "a,b", Labels: provisioning.Labels("a,b", ""), LoginKey: f.busKey}); err == nil {
		t.Error("Sweep of a name that is not a shed's: no error")
	}
}

// A Create that died after making the firewall, before the droplet
// existed, left the firewall under the shed's pending name and its tag.
// Sweep removes them, found by the shed's name and owner, and nothing
// else: not another developer's for a shed of the same name, not one a
// droplet still carries, not another shed's.
func TestSweepRemovesTheFirewallOfACreateThatDiedBeforeItsDroplet(t *testing.T) {
	f := setup(t, nil)
	ctx := context.Background()
	anywhere := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	made := func(shed, owner string) shedFirewall {
		t.Helper()
		fw, err := f.p.firewall(ctx, shed, owner, anywhere)
		if err != nil {
			t.Fatal(err)
		}
		return fw
	}
	lost := made("lost", "alice-laptop")
	others := made("lost", "bob-desktop")
	kept := made("lost", "alice-laptop")
	f.fake.AddDroplet(dofake.Droplet{Name: "lost", Tags: []string{"spuff", "spuff:lost", kept.tag}})
	made("keep", "alice-laptop")

	if err := f.p.Sweep(ctx, provisioning.SweepRequest{Name: "lost", Labels: provisioning.Labels("lost", "alice-laptop")}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, fw := range f.fake.Firewalls() {
		ids = append(ids, fw.ID)
	}
	if len(ids) != 3 || slices.Contains(ids, lost.id) || !slices.Contains(ids, others.id) || !slices.Contains(ids, kept.id) {
		t.Errorf("firewalls after Sweep = %+v, want all but %s", f.fake.Firewalls(), lost.id)
	}
	if tags := f.fake.Tags(); slices.Contains(tags, lost.tag) || !slices.Contains(tags, others.tag) || !slices.Contains(tags, kept.tag) {
		t.Errorf("tags after Sweep = %q, want all but %s", tags, lost.tag)
	}
	if err := f.p.Sweep(ctx, provisioning.SweepRequest{Name: "lost", Labels: provisioning.Labels("lost", "alice-laptop")}); err != nil {
		t.Errorf("a second Sweep = %v, want nil", err)
	}
}

// A Create that never returned after its droplet was made (spuff-app
// killed) left the firewall under its pending name, with no droplet ID
// in it; Delete of the droplet, found by reconcile, finds it through the
// droplet's tag and removes it and the tag.
func TestDeleteRemovesTheFirewallOfACreateThatNeverReturned(t *testing.T) {
	f := setup(t, nil)
	ctx := context.Background()
	fw, err := f.p.firewall(ctx, "lost", "alice-laptop", []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.p.firewall(ctx, "other", "alice-laptop", []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})
	if err != nil {
		t.Fatal(err)
	}
	id := f.fake.AddDroplet(dofake.Droplet{Name: "lost", Tags: []string{"spuff", "spuff:lost", fw.tag}})
	if err := f.p.Delete(ctx, fmt.Sprint(id)); err != nil {
		t.Fatal(err)
	}
	if fws := f.fake.Firewalls(); len(fws) != 1 || fws[0].ID != other.id {
		t.Errorf("firewalls after Delete = %+v, want only %s", fws, other.id)
	}
	if tags := firewallTags(f.fake.Tags()); !slices.Equal(tags, []string{other.tag}) {
		t.Errorf("firewall tags after Delete = %q, want only %q", tags, other.tag)
	}
}

// The firewall tag carries the shed's name and owner, and is told apart
// from a label's tag and another shed's.
func TestFirewallTag(t *testing.T) {
	tag := firewallTag("dev", "alice-laptop", "ABC234")
	if !tagRule.MatchString(tag) {
		t.Errorf("%q is not a DigitalOcean tag", tag)
	}
	for _, tc := range []struct {
		tag, shed, owner string
		want             bool
	}{
		{tag, "dev", "alice-laptop", true},
		{tag, "dev", "", false},
		{tag, "dev-alice", "laptop", false},
		{firewallTag("dev", "", "ABC234"), "dev", "", true},
		{firewallTag("dev", "", ""), "dev", "", false},
		{"spuff-fw:dev:alice-laptop:ABC:X", "dev", "alice-laptop", false},
		{"spuff:dev", "dev", "", false},
	} {
		if got := firewallTagOf(tc.tag, tc.shed, tc.owner); got != tc.want {
			t.Errorf("firewallTagOf(%q, %q, %q) = %v", tc.tag, tc.shed, tc.owner, got)
		}
	}
	if l := Labels([]string{"spuff:dev", tag}); len(l) != 1 || l["spuff"] != "dev" {
		t.Errorf("Labels = %v, want only spuff=dev", l)
	}
}

// A droplet create that got no answer (the up cancelled while the API
// held it) may have made the droplet all the same, or make it later, so
// Create keeps the firewall and its tag. With no droplet made, Sweep
// removes them; a droplet made all the same stays behind its firewall
// until Delete of the listed droplet removes all of it.
func TestCreateWithNoAnswerKeepsTheFirewall(t *testing.T) {
	for _, made := range []bool{false, true} {
		t.Run(fmt.Sprint("made=", made), func(t *testing.T) {
			f := setup(t, nil)
			hold := make(chan struct{})
			defer close(hold)
			if made {
				f.fake.HoldCreate = hold
			} else {
				f.fake.StallCreate = hold
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				for len(f.sent("POST", "/v2/droplets")) == 0 && f.fake.Stalled() == 0 {
					time.Sleep(time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
				cancel()
			}()
			if m, err := f.p.Create(ctx, f.request("demo")); !errors.Is(err, context.Canceled) || m.ID != "" {
				t.Fatalf("Create = %+v, %v; want no ID and context.Canceled", m, err)
			}
			fws := f.fake.Firewalls()
			if len(fws) != 1 || len(firewallTags(f.fake.Tags())) != 1 {
				t.Fatalf("firewalls %+v, tags %q after a create with no answer: want the firewall and its tag kept", fws, f.fake.Tags())
			}
			if ds := f.fake.Droplets(); made {
				if len(ds) != 1 || !slices.Contains(ds[0].Tags, fws[0].Tags[0]) {
					t.Fatalf("droplets %+v: want the one made, behind the firewall", ds)
				}
				if err := f.p.Delete(context.Background(), fmt.Sprint(ds[0].ID)); err != nil {
					t.Fatal(err)
				}
			} else if err := f.p.Sweep(context.Background(), provisioning.SweepRequest{Name: "demo", Labels: provisioning.Labels("demo", "alice-laptop"), LoginKey: f.key}); err != nil {
				t.Fatal(err)
			}
			if l := f.left(); l != "" {
				t.Errorf("left after the cleanup: %s", l)
			}
		})
	}
}

// A Delete whose destroy fails removes nothing else: the droplet, still
// running, keeps its firewall; and a firewall that cannot be removed
// keeps its tag, by which alone a later Sweep or Delete finds it. The
// retry removes all of it.
func TestDeleteKeepsWhatStillGuardsOrFinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(*dofake.Server, int)
	}{
		{"destroy fails", func(s *dofake.Server, code int) { s.FailDestroy = code }},
		{"firewall removal fails", func(s *dofake.Server, code int) { s.FailFirewallDelete = code }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, nil)
			m, err := f.p.Create(context.Background(), f.request("demo"))
			if err != nil {
				t.Fatal(err)
			}
			tc.fail(f.fake, http.StatusUnprocessableEntity) // a 5xx is retried for seconds first
			if err := f.p.Delete(context.Background(), m.ID); err == nil {
				t.Fatal("Delete succeeded while the API failed")
			}
			if len(f.fake.Firewalls()) != 1 || len(firewallTags(f.fake.Tags())) != 1 {
				t.Errorf("after the failed Delete: firewalls %+v, tags %q; want both kept", f.fake.Firewalls(), f.fake.Tags())
			}
			tc.fail(f.fake, 0)
			if err := f.p.Delete(context.Background(), m.ID); err != nil {
				t.Fatal(err)
			}
			if l := f.left(); l != "" {
				t.Errorf("left after the retry: %s", l)
			}
		})
	}
}
