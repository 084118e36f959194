package hetzner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/cloudinit"
	"github.com/spuff-dev/spuff/provisioning/hetzner/hcloudfake"
	"github.com/spuff-dev/spuff/provisioning/internal/cloudapi"
	"github.com/spuff-dev/spuff/provisioning/internal/cloudfake"
)

type fixture struct {
	p      *Provider
	fake   *hcloudfake.Fake
	token  string
	logs   *bytes.Buffer
	key    string
	busKey string
}

func setup(t *testing.T, tune func(*config.Config, map[string]string)) *fixture {
	t.Helper()
	f := &fixture{token: cloudfake.Token(t, ""), logs: &bytes.Buffer{}, key: cloudfake.LoginKey(t), busKey: cloudfake.LoginKey(t)}
	f.fake = hcloudfake.New(t, f.token)
	cfg := config.Default()
	env := map[string]string{TokenEnv: f.token, URLEnv: f.fake.URL}
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

func (f *fixture) sent(method, path string) []hcloudfake.Request {
	var out []hcloudfake.Request
	for _, r := range f.fake.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (f *fixture) empty(t *testing.T) {
	t.Helper()
	if s, fw, k := f.fake.Servers(), f.fake.Firewalls(), f.fake.Keys(); len(s)+len(fw)+len(k) != 0 {
		t.Errorf("left behind: servers %v, firewalls %v, keys %v", s, fw, k)
	}
}

func TestCreateAndDelete(t *testing.T) {
	f := setup(t, func(c *config.Config, _ map[string]string) {
		c.Hetzner.Location, c.Hetzner.ServerType, c.Hetzner.Image = "hel1", "cx32", "debian-12"
	})
	f.fake.RunningAfter = 2
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
	if m.State != provisioning.Running || m.SSHAddr != "198.51.100.20:22" || m.Name != "demo" || m.Labels[provisioning.OwnerLabel] != "alice-laptop" {
		t.Fatalf("Create = %+v", m)
	}
	if !slices.Contains(steps, "server initializing") || !slices.Contains(steps, "server running") {
		t.Errorf("progress did not follow initializing → running: %q", steps)
	}

	posts := f.sent("POST", "/servers")
	if len(posts) != 1 {
		t.Fatalf("%d server creates, want 1", len(posts))
	}
	var body struct {
		Name       string            `json:"name"`
		ServerType string            `json:"server_type"`
		Image      string            `json:"image"`
		Location   string            `json:"location"`
		SSHKeys    []int64           `json:"ssh_keys"`
		UserData   string            `json:"user_data"`
		Labels     map[string]string `json:"labels"`
		Firewalls  []struct {
			Firewall int64 `json:"firewall"`
		} `json:"firewalls"`
	}
	if err := json.Unmarshal(posts[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Name != "demo" || body.ServerType != "cx32" || body.Image != "debian-12" || body.Location != "hel1" {
		t.Errorf("server request = %s", posts[0].Body)
	}
	if body.Labels[provisioning.Label] != "demo" || body.Labels[provisioning.OwnerLabel] != "alice-laptop" {
		t.Errorf("labels = %v", body.Labels)
	}
	if body.UserData != string(req.UserData) || strings.Contains(body.UserData, "PRIVATE KEY") || strings.Contains(body.UserData, f.token) {
		t.Errorf("user_data = %q", body.UserData)
	}
	keys := f.fake.Keys()
	if len(keys) != 1 || !slices.Equal(body.SSHKeys, []int64{keys[0].ID}) || keys[0].Labels[ServerLabel] != m.ID {
		t.Errorf("ssh_keys = %v, project keys = %+v", body.SSHKeys, keys)
	}
	fws := f.fake.Firewalls()
	if len(fws) != 1 || len(body.Firewalls) != 1 || body.Firewalls[0].Firewall != fws[0].ID {
		t.Fatalf("firewalls in the create = %+v, project firewalls = %+v", body.Firewalls, fws)
	}
	fw := fws[0]
	if fw.Labels[ServerLabel] != m.ID || fw.Labels[provisioning.Label] != "demo" {
		t.Errorf("firewall labels = %v", fw.Labels)
	}
	if len(fw.Rules) != 1 || fw.Rules[0].Direction != "in" || fw.Rules[0].Protocol != "tcp" || fw.Rules[0].Port == nil || *fw.Rules[0].Port != "22" ||
		!slices.Equal(fw.Rules[0].SourceIPs, []string{"0.0.0.0/0", "::/0"}) {
		t.Errorf("firewall rules = %+v", fw.Rules)
	}
	for _, r := range f.fake.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			t.Errorf("%s %s without the token", r.Method, r.Path)
		}
	}

	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	f.empty(t)
	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Errorf("a second Delete = %v, want nil (not_found is already gone)", err)
	}
	if _, err := f.p.Get(context.Background(), m.ID); !errors.Is(err, provisioning.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

func TestCreateReusesTheProjectKey(t *testing.T) {
	f := setup(t, func(c *config.Config, _ map[string]string) { c.Hetzner.SSHFrom = []string{"198.51.100.7/24"} })
	k := f.fake.AddKey("laptop", f.key)
	m, err := f.p.Create(context.Background(), f.request("demo"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.sent("POST", "/ssh_keys")); n != 0 {
		t.Errorf("registered a key the project has (%d POSTs)", n)
	}
	if src := f.fake.Firewalls()[0].Rules[0].SourceIPs; !slices.Equal(src, []string{"198.51.100.0/24"}) {
		t.Errorf("ssh sources = %v", src)
	}
	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	if ks := f.fake.Keys(); len(ks) != 1 || ks[0].ID != k.ID {
		t.Errorf("Delete touched a key spuff did not register: %+v", ks)
	}
}

func TestCreateFailingHalfWayLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tune   func(*fixture)
		want   string
		withID bool
	}{
		{"firewall refused", func(f *fixture) { f.fake.FailFirewall = "resource_limit_exceeded" }, "limit is reached", false},
		{"server refused", func(f *fixture) { f.fake.FailServer = "resource_unavailable" }, "not available", false},
		{"never running", func(f *fixture) { f.fake.NeverRunning = true; f.p.ready = 150 * time.Millisecond }, "not running with a public IPv4 within", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, nil)
			tc.tune(f)
			m, err := f.p.Create(context.Background(), f.request("demo"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create = %v, want %q", err, tc.want)
			}
			if tc.withID && m.ID == "" {
				t.Error("no server ID beside the error")
			}
			f.empty(t)
		})
	}
}

func TestListPagesAndFindsOrphans(t *testing.T) {
	f := setup(t, nil)
	f.fake.PerPageCap = 2
	for i := range 5 {
		n := fmt.Sprintf("shed-%d", i)
		f.fake.AddServer(n, map[string]string{"spuff": n, "spuff-owner": "bob"})
	}
	f.fake.AddServer("web", map[string]string{"team": "x"})
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
	for _, r := range f.sent("GET", "/servers") {
		q, _ := url.ParseQuery(r.Query)
		if q.Get("label_selector") != "spuff" {
			t.Errorf("listed with %q", r.Query)
		}
		pages = append(pages, q.Get("page"))
	}
	if !slices.Equal(pages, []string{"1", "2", "3"}) {
		t.Errorf("pages = %v", pages)
	}
}

func TestDeleteAfterTheServerIsGone(t *testing.T) {
	// A Delete that stopped after the server went still finds the firewall
	// and key by the server's ID.
	f := setup(t, nil)
	m, err := f.p.Create(context.Background(), f.request("demo"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := serverID(m.ID)
	if _, _, err := f.p.c.Server.DeleteWithResult(context.Background(), &hcloudServer{ID: id}); err != nil {
		t.Fatal(err)
	}
	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	f.empty(t)
}

func TestRateLimits(t *testing.T) {
	t.Run("429 with Retry-After is waited out", func(t *testing.T) {
		f := setup(t, nil)
		id := f.fake.AddServer("a", map[string]string{"spuff": "a"})
		f.fake.Throttle(1, "1")
		if _, err := f.p.Get(context.Background(), fmt.Sprint(id)); err != nil {
			t.Fatal(err)
		}
		rs := f.fake.Requests()
		if len(rs) != 2 || rs[1].At.Sub(rs[0].At) < 900*time.Millisecond {
			t.Fatalf("%d requests; want a retry after Retry-After: 1", len(rs))
		}
	})
	t.Run("429 without Retry-After waits for RateLimit-Reset", func(t *testing.T) {
		f := setup(t, nil)
		f.fake.Throttle(1, "")
		if _, err := f.p.List(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(f.fake.Requests()); n != 2 {
			t.Errorf("%d requests, want 2 (one 429, one retry)", n)
		}
	})
	t.Run("retries are bounded", func(t *testing.T) {
		f := setup(t, nil)
		f.fake.Throttle(100, "0")
		_, err := f.p.List(context.Background())
		if err == nil || !strings.Contains(err.Error(), "rate limit") {
			t.Fatalf("List = %v", err)
		}
		if n := len(f.fake.Requests()); n != 5 {
			t.Errorf("%d requests, want 5", n)
		}
	})
}

func TestErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name string
		tune func(*config.Config, map[string]string)
		want string
	}{
		{"bad token", func(_ *config.Config, e map[string]string) { e[TokenEnv] = "wrong" }, "check HCLOUD_TOKEN"},
		{"unknown server type", func(c *config.Config, _ map[string]string) { c.Hetzner.ServerType = "no-such-type" }, `check hetzner.server_type ("no-such-type")`},
		{"unknown location", func(c *config.Config, _ map[string]string) { c.Hetzner.Location = "nowhere1" }, `check hetzner.location ("nowhere1")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, nil)
			f.fake.AddKey("laptop", f.key)
			cfg := config.Default()
			env := map[string]string{TokenEnv: f.token, URLEnv: f.fake.URL}
			tc.tune(cfg, env)
			p, err := New(provisioning.Env{Config: cfg, Getenv: func(k string) string { return env[k] }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Create(context.Background(), f.request("demo"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create = %v, want %q", err, tc.want)
			}
			if len(f.fake.Servers())+len(f.fake.Firewalls()) != 0 {
				t.Error("something was left")
			}
		})
	}
}

func TestNewAndUserData(t *testing.T) {
	if _, err := New(provisioning.Env{Getenv: func(string) string { return "" }}); err == nil || !strings.Contains(err.Error(), "set HCLOUD_TOKEN") {
		t.Errorf("New without a token = %v", err)
	}
	env := map[string]string{TokenEnv: "t", URLEnv: "http://hetzner.example/v1"}
	if _, err := New(provisioning.Env{Getenv: func(k string) string { return env[k] }}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("New with a cleartext remote URL = %v", err)
	}
	f := setup(t, nil)
	req := f.request("demo")
	req.UserData = bytes.Repeat([]byte("a"), MaxUserData+1)
	if _, err := f.p.Create(context.Background(), req); err == nil || !strings.Contains(err.Error(), "at most 32 KiB") {
		t.Errorf("Create with 32 KiB + 1 of user-data = %v", err)
	}
	req.UserData = []byte("#cloud-config\n#" + f.token)
	if _, err := f.p.Create(context.Background(), req); err == nil || strings.Contains(err.Error(), f.token) {
		t.Errorf("Create with the token in user-data = %v", err)
	}
	if n := len(f.fake.Requests()); n != 0 {
		t.Errorf("%d requests for refused user-data", n)
	}
	if !provisioning.Registered("hetzner") {
		t.Error("hetzner is not registered")
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
	if n := len(f.sent("POST", "/ssh_keys")); n != 1 {
		t.Errorf("%d key registrations, want 1", n)
	}
	if err := f.p.Delete(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	if ks := f.fake.Keys(); len(ks) != 1 || ks[0].Name != "other-laptop" {
		t.Errorf("keys after Delete = %+v, want the other registration kept", ks)
	}
}

// A Create that died after registering the login key and making the
// firewall, before the server existed, left both carrying the shed's name
// and owner and no server's label. Sweep removes those and nothing else:
// not another owner's, not another shed's, not what a server carries.
func TestSweepRemovesWhatACreateLeftBeforeItsServer(t *testing.T) {
	f := setup(t, nil)
	ctx := context.Background()
	running, err := f.p.Create(ctx, f.request("keep"))
	if err != nil {
		t.Fatal(err)
	}
	sources, _ := cloudapi.SSHSources(nil)
	leave := func(shed, owner, key string) {
		t.Helper()
		labels := provisioning.Labels(shed, owner)
		if _, _, err := f.p.loginKey(ctx, shed, key, labels); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.firewall(ctx, shed, labels, sources); err != nil {
			t.Fatal(err)
		}
	}
	// The running shed's key is the login key, so the lost Create found
	// it; its own key was the bus key, registered by it.
	leave("lost", "alice-laptop", f.busKey)
	leave("lost", "bob-desktop", cloudfake.LoginKey(t))
	leave("other", "alice-laptop", cloudfake.LoginKey(t))
	before := len(f.fake.Firewalls())

	if err := f.p.Sweep(ctx, provisioning.SweepRequest{Name: "lost", Labels: provisioning.Labels("lost", "alice-laptop"), LoginKey: f.busKey}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fake.Firewalls()); n != before-1 {
		t.Errorf("%d firewalls after Sweep, want %d: %+v", n, before-1, f.fake.Firewalls())
	}
	for _, fw := range f.fake.Firewalls() {
		if fw.Labels[provisioning.Label] == "lost" && fw.Labels[provisioning.OwnerLabel] == "alice-laptop" {
			t.Errorf("the lost Create's firewall is still there: %+v", fw)
		}
	}
	for _, k := range f.fake.Keys() {
		if k.Labels[provisioning.Label] == "lost" && k.Labels[provisioning.OwnerLabel] == "alice-laptop" {
			t.Errorf("the lost Create's key is still there: %+v", k)
		}
	}
	if n := len(f.fake.Keys()); n != 3 {
		t.Errorf("%d keys after Sweep, want the running shed's, bob's and the other shed's: %+v", n, f.fake.Keys())
	}
	if _, err := f.p.Get(ctx, running.ID); err != nil {
		t.Errorf("the running shed after Sweep: %v", err)
	}
	// Swept again, nothing is left to remove and nothing fails.
	if err := f.p.Sweep(ctx, provisioning.SweepRequest{Name: "lost", Labels: provisioning.Labels("lost", "alice-laptop")}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []provisioning.SweepRequest{
		{Name: "Lost", Labels: provisioning.Labels("Lost", "alice-laptop")},
		{Name: "lost", Labels: provisioning.Labels("other", "alice-laptop")},
		{Name: "lost", Labels: map[string]string{provisioning.Label: "lost", provisioning.OwnerLabel: "alice,spuff"}},
	} {
		if err := f.p.Sweep(ctx, bad); err == nil {
			t.Errorf("Sweep of %+v: no error", bad)
		}
	}
}
