package dockercreds_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/dockercreds"
	"github.com/spuff-dev/spuff/helpers/dockercreds/dockertest"
	"github.com/spuff-dev/spuff/helpers/helper"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// inlineHost is a config.json with only inline auths: no helper runs.
func inlineHost(t testing.TB) *dockercreds.Store {
	dir := t.TempDir()
	dockertest.WriteConfig(t, dir, map[string]any{
		"auths": map[string]any{
			"https://index.docker.io/v1/":   map[string]string{"auth": b64("hubuser:hubpass")},
			"https://Registry.Example.com/": map[string]string{"auth": b64("ex:expass:with:colons")},
			"tok.example:5000":              map[string]string{"auth": b64("ignored:x"), "identitytoken": "tok-secret"},
			"[::1]:5000":                    map[string]string{"username": "v6", "password": "v6pass"},
			"placeholder.example":           map[string]string{},
			"broken.example":                map[string]string{"auth": "!!!"},
			"not allowed.example":           map[string]string{"auth": b64("x:y")},
			"denied.example":                map[string]string{"auth": b64("den:denpass")},
		},
		"HttpHeaders": map[string]string{"User-Agent": "x"},
	})
	return &dockercreds.Store{ConfigDir: dir}
}

func TestStoreInlineAuths(t *testing.T) {
	s := inlineHost(t)
	ctx := t.Context()
	cases := []struct{ reg, user, secret string }{
		{dockercreds.DockerHub, "hubuser", "hubpass"},
		{"registry.example.com", "ex", "expass:with:colons"},
		{"tok.example:5000", dockercreds.TokenUsername, "tok-secret"},
		{"[::1]:5000", "v6", "v6pass"},
	}
	for _, c := range cases {
		got, err := s.Get(ctx, c.reg)
		if err != nil || got.Username != c.user || got.Secret != c.secret {
			t.Errorf("Get(%s) = %q, %v; want user %q and its secret", c.reg, got.Username, err, c.user)
		}
	}
	for _, reg := range []string{"placeholder.example", "broken.example", "nowhere.example", "registry.example.com:443"} {
		if _, err := s.Get(ctx, reg); !errors.Is(err, dockercreds.ErrNotFound) {
			t.Errorf("Get(%s) err = %v, want ErrNotFound", reg, err)
		}
	}
	m, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		dockercreds.DockerHub: "hubuser", "registry.example.com": "ex", "tok.example:5000": dockercreds.TokenUsername,
		"[::1]:5000": "v6", "denied.example": "den",
	}
	if len(m) != len(want) {
		t.Fatalf("List = %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("List = %v, want %v", m, want)
		}
	}
}

func TestStoreConfigLocation(t *testing.T) {
	dir := t.TempDir()
	dockertest.WriteConfig(t, dir, map[string]any{"auths": map[string]any{"a.example": map[string]string{"auth": b64("u:p")}}})
	t.Setenv("DOCKER_CONFIG", dir)
	s := &dockercreds.Store{}
	if p, _ := s.ConfigPath(); p != filepath.Join(dir, "config.json") {
		t.Fatalf("ConfigPath = %q, want DOCKER_CONFIG's", p)
	}
	if c, err := s.Get(t.Context(), "a.example"); err != nil || c.Username != "u" {
		t.Fatalf("Get via DOCKER_CONFIG: %q, %v", c.Username, err)
	}
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("HOME", dir)
	if p, _ := s.ConfigPath(); p != filepath.Join(dir, ".docker", "config.json") {
		t.Fatalf("ConfigPath = %q, want ~/.docker/config.json", p)
	}
	if _, err := s.Get(t.Context(), "a.example"); !errors.Is(err, dockercreds.ErrNotFound) {
		t.Fatalf("no config.json at all must be a miss, got %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".docker", "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), "a.example"); err == nil || errors.Is(err, dockercreds.ErrNotFound) {
		t.Fatalf("a broken config.json must be an error, got %v", err)
	}
}

func TestStoreRefusesHelperPaths(t *testing.T) {
	dir := t.TempDir()
	dockertest.WriteConfig(t, dir, map[string]any{"credsStore": "../../bin/sh"})
	s := &dockercreds.Store{ConfigDir: dir}
	if _, err := s.Get(t.Context(), "a.example"); err == nil || errors.Is(err, dockercreds.ErrNotFound) {
		t.Fatalf("a credsStore that is a path must be refused, got %v", err)
	}
}

// FuzzGuestGet feeds arbitrary stdin to the guest helper's get, through a
// bus to the host service, and checks that credentials come back only for
// the allowlisted registry the input normalizes to.
func FuzzGuestGet(f *testing.F) {
	for _, s := range []string{
		"https://index.docker.io/v1/\n", "docker.io", "registry.example.com", "HTTPS://REGISTRY.EXAMPLE.COM/v2/",
		"tok.example:05000", "[::1]:5000", "denied.example", "not allowed.example", "placeholder.example",
		"", "\n\n", "ftp://x", "a\x00b", strings.Repeat("a", 2000), "registry.example.com\nextra",
	} {
		f.Add([]byte(s))
	}
	s := inlineHost(f)
	want := map[string]string{
		dockercreds.DockerHub: "hubuser", "registry.example.com": "ex", "tok.example:5000": dockercreds.TokenUsername, "[::1]:5000": "v6",
	}
	cfg := &config.Config{Docker: config.Docker{Registries: []string{
		"docker.io", "registry.example.com", "tok.example:5000", "[::1]:5000", "placeholder.example",
	}}}
	helper := pipeHelper(newMiniBroker(dockercreds.NewService(s, nil), cfg, "fuzz"))
	f.Fuzz(func(t *testing.T, stdin []byte) {
		var out bytes.Buffer
		err := credentials.HandleCommand(helper, credentials.ActionGet, bytes.NewReader(stdin), &out)
		// credentials.Get joins the lines of stdin; that is the server URL.
		serverURL := strings.TrimSpace(strings.Join(strings.Split(strings.ReplaceAll(string(stdin), "\r\n", "\n"), "\n"), ""))
		reg, nerr := dockercreds.Normalize(serverURL)
		user, has := want[reg]
		if err != nil {
			if nerr == nil && has && utf8.ValidString(serverURL) && len(stdin) < 60000 {
				t.Fatalf("get %q (→ %s) failed: %v", stdin, reg, err)
			}
			return
		}
		if nerr != nil || !has {
			t.Fatalf("get %q gave credentials; its registry %q (%v) has none allowed", stdin, reg, nerr)
		}
		var c credentials.Credentials
		if err := json.Unmarshal(out.Bytes(), &c); err != nil {
			t.Fatalf("output is not credentials JSON: %v", err)
		}
		if c.Username != user {
			t.Fatalf("get %q gave %s's username %q, want %q", stdin, reg, c.Username, user)
		}
	})
}

// A failing host credential helper may print a URL with its userinfo; the
// text a shed gets and the host's log line carry neither part.
func TestHelperFailureRedactsURLUserinfo(t *testing.T) {
	const user, pass = "vaultuserexample", "vaultPassExample"
	bin := t.TempDir()
	script := "#!/bin/sh\necho \"cannot reach https://" + user + ":" + pass + "@vault.example/v1 for $1\" >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-leaky"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	dockertest.WriteConfig(t, dir, map[string]any{"credHelpers": map[string]string{"reg.example": "leaky"}})
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	svc := dockercreds.NewService(&dockercreds.Store{ConfigDir: dir, Logger: log}, log)
	cfg := &config.Config{Docker: config.Docker{Registries: []string{"reg.example"}}}
	sc := cfg.ForShed("alpha")
	raw, _ := json.Marshal(bus.DockerGetRequest{ServerURL: "reg.example"})
	r := &helper.Request{ID: bus.NewID(), Shed: "alpha", NS: bus.NSDocker, Op: bus.OpGet, Payload: raw, Config: &sc}
	a, err := svc.Describe(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Serve(context.Background(), r, a)
	if bus.CodeOf(err) != bus.CodeUpstream {
		t.Fatalf("err %v, want UPSTREAM_FAILED", err)
	}
	if !strings.Contains(logs.String(), "vault.example") {
		t.Fatalf("the helper's stderr is not in the log:\n%s", logs.String())
	}
	for what, text := range map[string]string{"error to the shed": err.Error(), "host log": logs.String()} {
		if strings.Contains(text, user) || strings.Contains(text, pass) {
			t.Errorf("%s repeats the URL's userinfo:\n%s", what, text)
		}
	}
}
