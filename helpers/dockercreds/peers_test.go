package dockercreds_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/dockercreds"
	"github.com/spuff-dev/spuff/helpers/dockercreds/dockertest"
	"github.com/spuff-dev/spuff/helpers/helper"
	"github.com/spuff-dev/spuff/test/testenv"
)

// hostFixture is a developer's computer: two registries with htpasswd auth
// and their logins kept by docker-credential-pass, configured as credsStore.
type hostFixture struct {
	reg, other *dockertest.Registry
	pass       *dockertest.Pass
	configDir  string
	store      *dockercreds.Store
}

func newHostFixture(t *testing.T) *hostFixture {
	t.Helper()
	pass := dockertest.NewPass(t)
	f := &hostFixture{
		pass:  pass,
		reg:   dockertest.StartRegistry(t, "alice", dockertest.RandomSecret()),
		other: dockertest.StartRegistry(t, "bob", dockertest.RandomSecret()),
	}
	// reg as `docker login` files it today; other as older clients did,
	// with a scheme and a trailing slash.
	pass.Store(t, f.reg.Addr, f.reg.User, f.reg.Password)
	pass.Store(t, "https://"+f.other.Addr+"/", f.other.User, f.other.Password)
	f.configDir = t.TempDir()
	dockertest.WriteConfig(t, f.configDir, map[string]any{
		"auths":      map[string]any{f.reg.Addr: map[string]any{}, "https://" + f.other.Addr + "/": map[string]any{}},
		"credsStore": "pass",
	})
	f.store = &dockercreds.Store{ConfigDir: f.configDir, Env: pass.Env()}
	return f
}

func (f *hostFixture) secrets() []string { return []string{f.reg.Password, f.other.Password} }

func TestRealPeers(t *testing.T) {
	f := newHostFixture(t)
	ctx := t.Context()

	t.Run("get through docker-credential-pass opens the registry", func(t *testing.T) {
		if code, err := f.reg.Ping("", ""); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("anonymous /v2/ = %d, %v; want 401 (is auth on?)", code, err)
		}
		c, err := f.store.Get(ctx, f.reg.Addr)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if c.Username != "alice" {
			t.Fatalf("username %q, want alice", c.Username)
		}
		if code, err := f.reg.Ping(c.Username, c.Secret); err != nil || code != http.StatusOK {
			t.Fatalf("/v2/ with the brokered login = %d, %v; want 200", code, err)
		}
		if code, _ := f.other.Ping(c.Username, c.Secret); code != http.StatusUnauthorized {
			t.Fatalf("reg's login opened the other registry: %d", code)
		}
	})

	t.Run("normalized spellings find the same login", func(t *testing.T) {
		for _, in := range []string{
			f.reg.Addr, "https://" + f.reg.Addr, "HTTP://" + f.reg.Addr + "/v2/", f.reg.Addr + "/",
		} {
			reg, err := dockercreds.Normalize(in)
			if err != nil {
				t.Fatalf("Normalize(%q): %v", in, err)
			}
			c, err := f.store.Get(ctx, reg)
			if err != nil || c.Username != "alice" {
				t.Fatalf("Get(%q → %q) = %q, %v", in, reg, c.Username, err)
			}
		}
		// other is filed under "https://ADDR/" by the helper; the canonical
		// name reaches it through the helper's own list.
		c, err := f.store.Get(ctx, f.other.Addr)
		if err != nil || c.Username != "bob" {
			t.Fatalf("Get(other) = %q, %v", c.Username, err)
		}
		if code, _ := f.other.Ping(c.Username, c.Secret); code != http.StatusOK {
			t.Fatalf("other's brokered login: %d, want 200", code)
		}
	})

	t.Run("a miss is ErrNotFound, though Debian's pass helper answers it with success", func(t *testing.T) {
		_, err := f.store.Get(ctx, "127.0.0.1:1")
		if !errors.Is(err, dockercreds.ErrNotFound) {
			t.Fatalf("Get(unknown) err = %v, want ErrNotFound", err)
		}
	})

	t.Run("list has both registries, normalized, with usernames", func(t *testing.T) {
		m, err := f.store.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{f.reg.Addr: "alice", f.other.Addr: "bob"}
		if len(m) != len(want) || m[f.reg.Addr] != "alice" || m[f.other.Addr] != "bob" {
			t.Fatalf("List = %v, want %v", m, want)
		}
	})

	t.Run("credHelpers before credsStore before auths", func(t *testing.T) {
		dir := t.TempDir()
		inline := "127.0.0.1:9"
		dockertest.WriteConfig(t, dir, map[string]any{
			"credHelpers": map[string]string{f.reg.Addr: "pass"},
			"credsStore":  "spuff-test-no-such-helper",
			"auths":       map[string]any{inline: map[string]string{"auth": "Y2Fyb2w6aW5saW5l"}}, // carol:inline
		})
		s := &dockercreds.Store{ConfigDir: dir, Env: f.pass.Env()}
		if c, err := s.Get(ctx, f.reg.Addr); err != nil || c.Username != "alice" {
			t.Fatalf("credHelpers entry not used first: %q, %v", c.Username, err)
		}
		var he *dockercreds.HelperError
		if _, err := s.Get(ctx, inline); !errors.As(err, &he) {
			t.Fatalf("a missing credsStore helper must fail loudly, got %v", err)
		}
		dockertest.WriteConfig(t, dir, map[string]any{
			"credsStore": "pass",
			"auths":      map[string]any{inline: map[string]string{"auth": "Y2Fyb2w6aW5saW5l"}},
		})
		if c, err := s.Get(ctx, inline); err != nil || c.Username != "carol" || c.Secret != "inline" {
			t.Fatalf("auths fallback after a credsStore miss: %q, %v", c.Username, err)
		}
	})

	t.Run("service: allowlist per shed, store and erase refused", func(t *testing.T) {
		cfg := &config.Config{
			Docker: config.Docker{Registries: []string{"https://" + f.reg.Addr + "/"}},
			Sheds: map[string]config.ShedOverride{
				"beta": {Docker: &config.DockerOverride{Registries: []string{"http://" + f.other.Addr}}},
				"all":  {Docker: &config.DockerOverride{AllowAll: ptr(true)}},
			},
		}
		svc := dockercreds.NewService(f.store, nil)
		call := func(shed, op string, payload any) (any, *helper.Action, error) {
			sc := cfg.ForShed(shed)
			raw, _ := json.Marshal(payload)
			r := &helper.Request{ID: bus.NewID(), Shed: shed, NS: bus.NSDocker, Op: op, Payload: raw, Config: &sc}
			a, err := svc.Describe(ctx, r)
			if err != nil {
				return nil, nil, err
			}
			out, err := svc.Serve(ctx, r, a)
			for _, s := range f.secrets() {
				if strings.Contains(a.Detail+a.Prompt+a.Subject, s) {
					t.Fatalf("a secret is in the audit detail or prompt")
				}
			}
			return out, a, err
		}
		get := func(shed, server string) (bus.DockerGetResponse, *helper.Action, error) {
			out, a, err := call(shed, bus.OpGet, bus.DockerGetRequest{ServerURL: server})
			r, _ := out.(bus.DockerGetResponse)
			return r, a, err
		}

		r, a, err := get("alpha", f.reg.Addr)
		if err != nil || r.Username != "alice" {
			t.Fatalf("alpha get reg: %q, %v", r.Username, err)
		}
		if a.Class != helper.ClassDocker || a.Subject != f.reg.Addr || a.Detail != f.reg.Addr+" user:alice" {
			t.Fatalf("alpha get reg action = %+v", a)
		}
		if code, _ := f.reg.Ping(r.Username, r.Secret); code != http.StatusOK {
			t.Fatalf("brokered login rejected by the registry: %d", code)
		}
		_, a, err = get("alpha", "https://"+f.other.Addr)
		if bus.CodeOf(err) != bus.CodeNotAllowed || a.Class != "" {
			t.Fatalf("alpha get other: err %v class %q, want NOT_ALLOWED with no approval class", err, a.Class)
		}
		// The same registry, a different shed, a different answer.
		if _, _, err = get("beta", f.reg.Addr); bus.CodeOf(err) != bus.CodeNotAllowed {
			t.Fatalf("beta get reg: %v, want NOT_ALLOWED", err)
		}
		if r, _, err = get("beta", f.other.Addr); err != nil || r.Username != "bob" {
			t.Fatalf("beta get other: %q, %v", r.Username, err)
		}
		if _, _, err = get("all", "127.0.0.1:1"); bus.CodeOf(err) != bus.CodeKeyNotFound {
			t.Fatalf("allow_all get of a registry without login: %v, want KEY_NOT_FOUND", err)
		}
		if _, _, err = get("alpha", "ftp://"+f.reg.Addr); bus.CodeOf(err) != bus.CodeBadRequest {
			t.Fatalf("bad address: %v, want BAD_REQUEST", err)
		}

		lists := map[string]map[string]string{
			"alpha": {f.reg.Addr: "alice"},
			"beta":  {f.other.Addr: "bob"},
			"all":   {f.reg.Addr: "alice", f.other.Addr: "bob"},
		}
		for shed, want := range lists {
			out, _, err := call(shed, bus.OpList, nil)
			if err != nil {
				t.Fatalf("%s list: %v", shed, err)
			}
			got := out.(bus.DockerListResponse).Registries
			if len(got) != len(want) {
				t.Fatalf("%s list = %v, want %v", shed, got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("%s list = %v, want %v", shed, got, want)
				}
			}
		}

		for _, op := range []string{bus.OpStore, bus.OpErase} {
			_, a, err := call("all", op, bus.DockerGetRequest{ServerURL: f.reg.Addr})
			if bus.CodeOf(err) != bus.CodeNotAllowed || !strings.Contains(err.Error(), "docker login") {
				t.Fatalf("%s: %v, want NOT_ALLOWED naming docker login", op, err)
			}
			if a.Class != "" || !strings.Contains(a.Detail, f.reg.Addr) {
				t.Fatalf("%s action = %+v", op, a)
			}
		}
		// The host's store is untouched by the refused erase.
		if c, err := f.store.Get(ctx, f.reg.Addr); err != nil || c.Username != "alice" {
			t.Fatalf("login gone after a refused erase: %v", err)
		}
	})

	t.Run("docker-credential-spuff binary through a guest socket", func(t *testing.T) {
		bin := testenv.GoBinary(t, "./guest/cmd/docker-credential-spuff")
		cfg := &config.Config{Docker: config.Docker{Registries: []string{f.reg.Addr}}}
		mb := newMiniBroker(dockercreds.NewService(f.store, nil), cfg, "alpha")
		sock := guestSock(t, mb)
		env := map[string]string{"SPUFF_GUEST_SOCK": sock}
		prog := client.NewShellProgramFuncWithEnv(bin, &env)

		c, err := client.Get(prog, "https://"+f.reg.Addr)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if code, _ := f.reg.Ping(c.Username, c.Secret); c.Username != "alice" || code != http.StatusOK {
			t.Fatalf("get gave %q, registry says %d", c.Username, code)
		}
		// Outside the allowlist: the standard not-found, so clients go anonymous.
		if _, err := client.Get(prog, f.other.Addr); !credentials.IsErrCredentialsNotFound(err) {
			t.Fatalf("get other: %v, want credentials not found", err)
		}
		m, err := client.List(prog)
		if err != nil || len(m) != 1 || m[f.reg.Addr] != "alice" {
			t.Fatalf("list = %v, %v", m, err)
		}
		err = client.Store(prog, &credentials.Credentials{ServerURL: f.reg.Addr, Username: "mallory", Secret: "guest-secret-xyz"})
		if err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("store: %v, want a read-only refusal", err)
		}
		if err := client.Erase(prog, f.reg.Addr); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("erase: %v, want a read-only refusal", err)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "docker-credential-spuff ") {
			t.Fatalf("version: %q, %v", out, err)
		}

		want := []struct{ op, code string }{
			{bus.OpGet, ""}, {bus.OpGet, bus.CodeNotAllowed}, {bus.OpList, ""},
			{bus.OpStore, bus.CodeNotAllowed}, {bus.OpErase, bus.CodeNotAllowed},
		}
		got := mb.served()
		if len(got) != len(want) {
			t.Fatalf("host served %d requests, want %d: %+v", len(got), len(want), got)
		}
		for i, w := range want {
			if got[i].Op != w.op || got[i].Code != w.code {
				t.Fatalf("request %d = %s/%s, want %s/%s", i, got[i].Op, got[i].Code, w.op, w.code)
			}
			if strings.Contains(got[i].Payload, "guest-secret-xyz") || strings.Contains(got[i].Payload, "mallory") {
				t.Fatalf("the guest sent a secret it was asked to store: %s", got[i].Payload)
			}
		}
		if got[0].Detail != f.reg.Addr+" user:alice" || got[3].Detail != f.reg.Addr+" refused: read-only" {
			t.Fatalf("audit details: %q, %q", got[0].Detail, got[3].Detail)
		}
	})

	t.Run("crane pushes and reads with the host login through credsStore pass", func(t *testing.T) {
		layout := t.TempDir()
		digest := dockertest.WriteOCILayout(t, layout, "v1")
		ref := f.reg.Addr + "/team/app:v1"
		host := append([]string{"DOCKER_CONFIG=" + f.configDir, "HOME=" + t.TempDir()}, f.pass.Env()...)
		dockertest.Push(t, layout, ref, host)
		out, err := dockertest.Crane(t, host, "digest", ref)
		if err != nil || strings.TrimSpace(string(out)) != digest {
			t.Fatalf("crane digest with the host login = %q, %v; want %s", out, err, digest)
		}
		anon := []string{"DOCKER_CONFIG=" + t.TempDir(), "HOME=" + t.TempDir()}
		if out, err := dockertest.Crane(t, anon, "digest", ref); err == nil || !strings.Contains(string(out), "401") && !strings.Contains(string(out), "UNAUTHORIZED") {
			t.Fatalf("anonymous crane digest = %q, %v; want 401", out, err)
		}
	})

	t.Run("no secret in any file outside the password store", func(t *testing.T) {
		b, err := os.ReadFile(f.configDir + "/config.json")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.secrets() {
			if strings.Contains(string(b), s) {
				t.Fatal("a registry password is in config.json; it belongs in pass")
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }
