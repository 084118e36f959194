// Package dockertest starts the real peers docker credential tests talk to:
// a docker registry with htpasswd auth on 127.0.0.1, and a pass password
// store (with its own batch-generated gpg key) behind Debian's
// docker-credential-pass. Every process it starts is stopped by t.Cleanup.
package dockertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/spuff-dev/spuff/test/testenv"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a docker-registry process serving plain HTTP on 127.0.0.1.
type Registry struct {
	Addr     string // 127.0.0.1:PORT
	User     string
	Password string
	Dir      string // storage and config
}

// StartRegistry runs Debian's docker-registry with htpasswd auth for one
// user, storage in a temp dir, on a free port.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	bin := testenv.Tool(t, "docker-registry")
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		addr := testenv.FreeAddr(t)
		cfg := filepath.Join(dir, "config.yml")
		yaml := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
auth:
  htpasswd:
    realm: spuff-test
    path: %s
`, filepath.Join(dir, "storage"), addr, RandomSecret(), htpasswd)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfg)
		cmd.Env = cleanEnv()
		p, err := testenv.StartProcess("docker-registry", cmd)
		if err != nil {
			t.Fatal(err)
		}
		r := &Registry{Addr: addr, User: user, Password: password, Dir: dir}
		// Another test may take the free port before the registry binds it: retry.
		err = p.WaitReady(15*time.Second, func() bool {
			code, err := r.Ping("", "")
			return err == nil && code == http.StatusUnauthorized
		})
		if err == nil {
			t.Cleanup(p.Stop)
			return r
		}
		p.Stop()
		if attempt == 2 {
			t.Fatalf("docker-registry did not come up on %s: %v", addr, err)
		}
	}
}

// cleanEnv drops REGISTRY_* variables, which would override the config file.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// Ping asks GET /v2/ with the given basic credentials (none when user is "")
// and returns the HTTP status: 200 for good credentials, 401 otherwise.
func (r *Registry) Ping(user, password string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+r.Addr+"/v2/", nil)
	if err != nil {
		return 0, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Pass is a pass(1) password store initialized for a batch-generated,
// passphrase-less gpg key, in temp dirs of its own.
type Pass struct {
	GnuPGHome string
	StoreDir  string
}

// NewPass creates the gpg key and the store. gpg-agent is stopped at cleanup.
func NewPass(t testing.TB) *Pass {
	t.Helper()
	gpg := testenv.Tool(t, "gpg")
	passBin := testenv.Tool(t, "pass")
	testenv.Tool(t, "docker-credential-pass")
	// gpg-agent's socket lives in GNUPGHOME; keep the path short.
	home, err := os.MkdirTemp("", "spuff-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Pass{GnuPGHome: home, StoreDir: filepath.Join(t.TempDir(), "password-store")}
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = append(os.Environ(), p.Env()...)
		_ = kill.Run()
		os.RemoveAll(home)
	})
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	params := `%no-protection
Key-Type: EdDSA
Key-Curve: ed25519
Subkey-Type: ECDH
Subkey-Curve: cv25519
Name-Real: spuff test
Name-Email: docker-test@spuff.invalid
Expire-Date: 0
%commit
`
	p.run(t, gpg, params, "--batch", "--quiet", "--gen-key")
	p.run(t, passBin, "", "init", "docker-test@spuff.invalid")
	return p
}

func (p *Pass) run(t testing.TB, bin, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), p.Env()...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), args[0], err, out)
	}
}

// Env is what a process needs to use this store.
func (p *Pass) Env() []string {
	return []string{"GNUPGHOME=" + p.GnuPGHome, "PASSWORD_STORE_DIR=" + p.StoreDir}
}

// EnvMap is Env as a map.
func (p *Pass) EnvMap() map[string]string {
	return map[string]string{"GNUPGHOME": p.GnuPGHome, "PASSWORD_STORE_DIR": p.StoreDir}
}

// Program runs docker-credential-pass against this store.
func (p *Pass) Program() client.ProgramFunc {
	env := p.EnvMap()
	return client.NewShellProgramFuncWithEnv("docker-credential-pass", &env)
}

// Store files credentials under serverURL through the helper protocol, the
// way `docker login` does.
func (p *Pass) Store(t testing.TB, serverURL, user, secret string) {
	t.Helper()
	err := client.Store(p.Program(), &credentials.Credentials{ServerURL: serverURL, Username: user, Secret: secret})
	if err != nil {
		t.Fatalf("docker-credential-pass store %s failed", serverURL) // the error may quote the secret
	}
}

// WriteConfig writes dir/config.json (0600) from v, creating dir.
func WriteConfig(t testing.TB, dir string, v any) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// RandomSecret returns a fresh password that is easy to grep for.
func RandomSecret() string { return testenv.RandomSecret("pw-") }
