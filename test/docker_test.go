package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/guest/dockerhelper"
	"github.com/spuff-dev/spuff/helpers/dockercreds/dockertest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// dockerHost is the developer's computer for the docker tests: two
// registries with htpasswd auth, their logins in a real pass store behind
// docker-credential-pass (credsStore: pass), an image pushed to each with
// those logins, and spuff-app running with that docker config.
type dockerHost struct {
	reg, other *dockertest.Registry
	pass       *dockertest.Pass
	env        []string // DOCKER_CONFIG, GNUPGHOME, PASSWORD_STORE_DIR of the host
	h          *harness.Host
	digest     map[string]string // registry address → digest of team/app:v1
	helper     string            // docker-credential-spuff
	crane      string
}

// alpha may use reg (the global allowlist); beta only other.
func startDockerHost(t testing.TB) *dockerHost {
	t.Helper()
	d := &dockerHost{
		crane:  testenv.Tool(t, "crane"),
		pass:   dockertest.NewPass(t),
		reg:    dockertest.StartRegistry(t, "alice", dockertest.RandomSecret()),
		other:  dockertest.StartRegistry(t, "bob", dockertest.RandomSecret()),
		digest: map[string]string{},
	}
	d.pass.Store(t, d.reg.Addr, d.reg.User, d.reg.Password)
	d.pass.Store(t, d.other.Addr, d.other.User, d.other.Password)
	hostDocker := filepath.Join(harness.ShortTempDir(t), "docker")
	dockertest.WriteConfig(t, hostDocker, map[string]any{
		"auths":      map[string]any{d.reg.Addr: map[string]any{}, d.other.Addr: map[string]any{}},
		"credsStore": "pass",
	})
	d.env = append([]string{"DOCKER_CONFIG=" + hostDocker}, d.pass.Env()...)
	for _, r := range []*dockertest.Registry{d.reg, d.other} {
		layout := t.TempDir()
		d.digest[r.Addr] = dockertest.WriteOCILayout(t, layout, "v1")
		dockertest.Push(t, layout, r.Addr+"/team/app:v1", d.env)
	}
	cfg := fmt.Sprintf(`docker:
  registries: ["%s"]
sheds:
  beta:
    docker:
      registries: ["http://%s/"]
`, d.reg.Addr, d.other.Addr)
	env := d.pass.EnvMap()
	env["DOCKER_CONFIG"] = hostDocker
	d.h = harness.Start(t, harness.Options{Config: cfg, Env: env})
	d.helper = testenv.GoBinary(t, "./guest/cmd/docker-credential-spuff")
	return d
}

// shed is one guest whose docker config says credsStore: spuff, with
// docker-credential-spuff first in its PATH.
type shed struct {
	g   *harness.Guest
	env []string
	bin string // the shed's bin dir, first in its PATH
}

func (d *dockerHost) shed(t testing.TB, name string) *shed {
	t.Helper()
	g := d.h.Guest(t, name)
	bin := filepath.Join(g.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(d.helper, filepath.Join(bin, "docker-credential-spuff")); err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(g.Dir, ".docker")
	dockertest.WriteConfig(t, docker, map[string]any{"credsStore": "spuff"})
	return &shed{g: g, bin: bin, env: []string{"DOCKER_CONFIG=" + docker, "PATH=" + bin + ":" + os.Getenv("PATH")}}
}

func (s *shed) command(name string, args ...string) *exec.Cmd {
	cmd := s.g.Command(name, args...)
	cmd.Env = append(cmd.Env, s.env...) // later entries win
	return cmd
}

func (s *shed) crane(d *dockerHost, args ...string) (string, error) {
	out, err := s.command(d.crane, append([]string{"--insecure"}, args...)...).CombinedOutput()
	return string(out), err
}

// helper runs docker-credential-spuff ACTION with stdin in the shed.
func (s *shed) helper(action, stdin string) (string, error) {
	// exec resolves a bare name in the test's PATH, not the shed's.
	cmd := s.command(filepath.Join(s.bin, "docker-credential-spuff"), action)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	return string(out), err
}

func dockerAudit(shed, op string) func(audit.Record) bool {
	return func(r audit.Record) bool { return r.Shed == shed && r.NS == "docker-credentials" && r.Op == op }
}

func TestDockerCredentials(t *testing.T) {
	d := startDockerHost(t)
	alpha := d.shed(t, "alpha")
	beta := d.shed(t, "beta")
	ref := func(r *dockertest.Registry) string { return r.Addr + "/team/app:v1" }

	t.Run("crane in the shed reads the manifest through the broker", func(t *testing.T) {
		out, err := alpha.crane(d, "digest", ref(d.reg))
		if err != nil || strings.TrimSpace(out) != d.digest[d.reg.Addr] {
			t.Fatalf("crane digest in alpha = %q, %v; want %s\nspuff-app:\n%s", out, err, d.digest[d.reg.Addr], d.h.Log())
		}
		if out, err := alpha.crane(d, "manifest", ref(d.reg)); err != nil || !strings.Contains(out, dockertest.MediaManifest) {
			t.Fatalf("crane manifest in alpha = %q, %v", out, err)
		}
		recs := d.h.FindAudit(t, dockerAudit("alpha", "get"))
		ok := false
		for _, r := range recs {
			if r.Result == "ok" && r.Detail == d.reg.Addr+" user:alice" && r.Approval == "none" {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("no ok audit line naming %s and alice: %+v", d.reg.Addr, recs)
		}
	})

	t.Run("skopeo in the shed, with credHelpers naming spuff", func(t *testing.T) {
		skopeo := testenv.Tool(t, "skopeo")
		// skopeo reads credHelpers but not credsStore, so it gets its own config.
		docker := filepath.Join(alpha.g.Dir, "skopeo-docker")
		dockertest.WriteConfig(t, docker, map[string]any{"credHelpers": map[string]string{d.reg.Addr: "spuff"}})
		cmd := alpha.command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+ref(d.reg))
		cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+docker)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), dockertest.MediaManifest) {
			t.Fatalf("skopeo inspect in alpha: %v\n%s", err, out)
		}
	})

	t.Run("a registry outside the allowlist: anonymous, 401, audited as denied", func(t *testing.T) {
		out, err := alpha.crane(d, "manifest", ref(d.other))
		if err == nil || !strings.Contains(out, "401") && !strings.Contains(out, "UNAUTHORIZED") {
			t.Fatalf("crane manifest of a registry outside alpha's allowlist = %q, %v; want 401", out, err)
		}
		// The helper says "not found", so clients go on without credentials.
		if out, err := alpha.helper("get", d.other.Addr); err == nil || strings.TrimSpace(out) != "credentials not found in native keychain" {
			t.Fatalf("helper get outside the allowlist printed %q, %v", out, err)
		}
		denied := 0
		for _, r := range d.h.FindAudit(t, dockerAudit("alpha", "get")) {
			if r.Result == "denied" && strings.HasPrefix(r.Detail, d.other.Addr) {
				denied++
			}
		}
		if denied < 2 {
			t.Fatalf("%d denied audit lines for %s in alpha, want ≥ 2", denied, d.other.Addr)
		}
	})

	t.Run("a second shed, a different allowlist, a different answer", func(t *testing.T) {
		if out, err := beta.crane(d, "digest", ref(d.other)); err != nil || strings.TrimSpace(out) != d.digest[d.other.Addr] {
			t.Fatalf("beta reading other = %q, %v", out, err)
		}
		if out, err := beta.crane(d, "manifest", ref(d.reg)); err == nil || !strings.Contains(out, "401") && !strings.Contains(out, "UNAUTHORIZED") {
			t.Fatalf("beta reading reg (allowed for alpha only) = %q, %v; want 401", out, err)
		}
		for name, s := range map[string]*shed{"alpha": alpha, "beta": beta} {
			want := map[string]string{"alpha": `{"` + d.reg.Addr + `":"alice"}`, "beta": `{"` + d.other.Addr + `":"bob"}`}[name]
			if out, err := s.helper("list", ""); err != nil || strings.TrimSpace(out) != want {
				t.Fatalf("%s list = %q, %v; want %s", name, out, err, want)
			}
		}
	})

	t.Run("store and erase are refused and audited", func(t *testing.T) {
		creds := fmt.Sprintf(`{"ServerURL":%q,"Username":"mallory","Secret":"typed-in-the-shed"}`, d.reg.Addr)
		if out, err := alpha.helper("store", creds); err == nil || !strings.Contains(out, "read-only") {
			t.Fatalf("store = %q, %v; want a read-only refusal", out, err)
		}
		if out, err := alpha.helper("erase", d.reg.Addr); err == nil || !strings.Contains(out, "read-only") {
			t.Fatalf("erase = %q, %v; want a read-only refusal", out, err)
		}
		// A real client's login goes through the same store.
		if out, err := alpha.crane(d, "auth", "login", d.reg.Addr, "-u", "mallory", "-p", "typed-in-the-shed"); err == nil {
			t.Fatalf("crane auth login in the shed succeeded: %s", out)
		}
		for _, op := range []string{"store", "erase"} {
			recs := d.h.FindAudit(t, dockerAudit("alpha", op))
			if len(recs) < 1 || recs[0].Result != "denied" || recs[0].Code != "NOT_ALLOWED" || !strings.HasPrefix(recs[0].Detail, d.reg.Addr) {
				t.Fatalf("%s audit: %+v", op, recs)
			}
		}
		// The host's login is still there and still works.
		c, err := client.Get(d.pass.Program(), d.reg.Addr)
		if err != nil || c.Username != "alice" {
			t.Fatalf("the host's login changed after refused writes: %v", err)
		}
		if code, _ := d.reg.Ping(c.Username, c.Secret); code != 200 {
			t.Fatalf("the host's login no longer opens the registry: %d", code)
		}
	})

	t.Run("no registry password in the sheds' files, environment or logs, nor in the audit", func(t *testing.T) {
		secrets := []string{d.reg.Password, d.other.Password}
		for _, s := range []*shed{alpha, beta} {
			s.g.AssertNoSecret(t, []harness.Secret{
				{What: "the registry password", Value: []byte(d.reg.Password)},
				{What: "the other registry's password", Value: []byte(d.other.Password)},
			}, s.env...)
		}
		b, err := os.ReadFile(d.h.AuditPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range append(secrets, "typed-in-the-shed") {
			if bytes.Contains(b, []byte(sec)) || strings.Contains(d.h.Log(), sec) {
				t.Fatal("a secret is in the audit log or spuff-app's log")
			}
		}
	})
}

// BenchmarkDockerGet runs `docker-credential-spuff get` in a shed as a
// process — through guest.sock, the guest daemon, the bus, spuff-app's
// pipeline and docker-credential-pass on the host — beside
// `docker-credential-pass get` run directly on the host, interleaved in
// rounds, and reports both p50s and their ratio. Each iteration times n
// gets of each, so `make bench`'s one iteration is a figure, not a sample.
func BenchmarkDockerGet(b *testing.B) {
	const n = 60 // a pass get runs gpg: about 0.1 s
	d := startDockerHost(b)
	s := d.shed(b, "bench")
	direct := d.pass.Program()
	timeEach := func(get func() error) timedFunc {
		return func(k int) []time.Duration {
			out := make([]time.Duration, 0, k)
			for range k {
				start := time.Now()
				if err := get(); err != nil {
					b.Fatal(err)
				}
				out = append(out, time.Since(start))
			}
			return out
		}
	}
	viaSpuff := timeEach(func() error {
		out, err := s.helper("get", d.reg.Addr)
		if err != nil || !strings.Contains(out, `"Username":"alice"`) {
			return fmt.Errorf("docker-credential-spuff get: %v", err)
		}
		return nil
	})
	viaPass := timeEach(func() error {
		if c, err := client.Get(direct, d.reg.Addr); err != nil || c.Username != "alice" {
			return fmt.Errorf("docker-credential-pass get: %v", err)
		}
		return nil
	})
	for b.Loop() {
		t := interleaved(b, n, viaSpuff, viaPass)
		spuff50 := testenv.ReportPercentiles(b, "spuff", t[0])
		pass50 := testenv.ReportPercentiles(b, "pass", t[1])
		b.ReportMetric(spuff50/pass50, "ratio")
	}
}

// podmanArgs run podman as root in a sandbox with no systemd: its own
// storage (vfs) and run dirs under dir, cgroupfs, file events.
func podmanArgs(dir string, args ...string) []string {
	return append([]string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "runroot"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}, args...)
}

// skopeo, podman and buildah read credHelpers, not credsStore. The guest writes an
// entry per registry the host allows each time the host attaches, so they
// pull through the broker with the config spuff-guest keeps, after a guest
// restart too, and the entries follow the host's allowlist when it changes.
func TestDockerCredHelpersFollowTheHost(t *testing.T) {
	d := startDockerHost(t)
	skopeo := testenv.Tool(t, "skopeo")
	podman := testenv.Tool(t, "podman")
	buildah := testenv.Tool(t, "buildah")
	g := d.h.Guest(t, "alpha", harness.GuestOptions{Env: map[string]string{"DOCKER_CONFIG": ""}})
	bin := filepath.Join(g.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(d.helper, filepath.Join(bin, "docker-credential-spuff")); err != nil {
		t.Fatal(err)
	}
	cf := dockerhelper.ConfigFile{Dir: filepath.Join(g.Dir, ".docker")}
	waitRegistries := func(want ...string) {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got, _ = cf.Registries(); slices.Equal(got, want) {
				return
			}
		}
		b, _ := os.ReadFile(cf.Path())
		t.Fatalf("the shed's docker config sends %v to spuff, want %v:\n%s\nguest:\n%s", got, want, b, g.Log())
	}
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=", "XDG_RUNTIME_DIR=" + filepath.Join(g.Dir, "xdg")}
	run := func(name string, args ...string) (string, error) {
		cmd := g.Command(name, args...)
		cmd.Env = append(cmd.Env, env...)
		cmd.Stdin = nil
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	pulls := func(when string) {
		t.Helper()
		ref := d.reg.Addr + "/team/app:v1"
		if out, err := run(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+ref); err != nil || !strings.Contains(out, dockertest.MediaManifest) {
			t.Fatalf("skopeo inspect %s: %v\n%s\nspuff-app:\n%s", when, err, out, d.h.Log())
		}
		store := harness.ShortTempDir(t) // podman refuses a runroot over 50 bytes
		if out, err := run(podman, podmanArgs(store, "pull", "--tls-verify=false", "docker://"+ref)...); err != nil {
			t.Fatalf("podman pull %s: %v\n%s", when, err, out)
		}
		if out, err := run(podman, podmanArgs(store, "image", "exists", ref)...); err != nil {
			t.Fatalf("podman has no %s after pulling it %s: %v\n%s", ref, when, err, out)
		}
		bstore := harness.ShortTempDir(t)
		if out, err := run(buildah, "--root", filepath.Join(bstore, "s"), "--runroot", filepath.Join(bstore, "r"), "--storage-driver", "vfs",
			"pull", "--tls-verify=false", "docker://"+ref); err != nil {
			t.Fatalf("buildah pull %s: %v\n%s", when, err, out)
		}
	}

	waitRegistries(d.reg.Addr)
	pulls("with the config spuff-guest wrote")
	if n := len(d.h.FindAudit(t, func(r audit.Record) bool {
		return r.Shed == "alpha" && r.NS == "docker-credentials" && r.Op == "get" && r.Result == "ok"
	})); n < 3 {
		t.Fatalf("%d ok get lines for alpha; skopeo, podman and buildah did not all ask the broker", n)
	}

	g.Restart(t)
	d.h.WaitState(t, "alpha", "connected")
	waitRegistries(d.reg.Addr)
	pulls("after spuff-guest restarted")

	// The host's allowlist changes: alpha may now use other only.
	cfg := fmt.Sprintf("docker:\n  registries: [\"%s\"]\n", d.other.Addr)
	if err := os.WriteFile(filepath.Join(d.h.Home, "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.h.Restart(t)
	d.h.WaitState(t, "alpha", "connected")
	waitRegistries(d.other.Addr)
	if out, err := run(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+d.other.Addr+"/team/app:v1"); err != nil {
		t.Fatalf("skopeo inspect of the newly allowed registry: %v\n%s", err, out)
	}
}
