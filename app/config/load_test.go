package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// write puts a config file with mode 0600 in a fresh directory.
func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, body string) (*Config, error) {
	t.Helper()
	return Load(write(t, body))
}

func mustLoad(t *testing.T, body string) *Config {
	t.Helper()
	c, err := load(t, body)
	if err != nil {
		t.Fatalf("loading\n%s\n: %v", body, err)
	}
	return c
}

func TestMissingFileIsDefault(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	c, err := Load(filepath.Join(t.TempDir(), "nope", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Audit.Path = "/data/shed/extensions-audit.log"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the default config is invalid: %v", err)
	}
	// An empty or comment-only file is the same.
	for _, body := range []string{"", "# nothing\n", "---\n", "~\n"} {
		if c := mustLoad(t, body); !reflect.DeepEqual(c, want) {
			t.Errorf("%q loaded as %+v", body, c)
		}
	}
}

func TestLoadRefusesFilesOthersCanReach(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o700 | 0o070} {
		p := write(t, "ssh: {mode: auto}\n")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil {
			t.Fatalf("loaded a %04o config", mode)
		}
		if !strings.Contains(err.Error(), "run: chmod 600 "+p) {
			t.Errorf("%04o: the error does not give the fix: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		p := write(t, "ssh: {mode: auto}\n")
		os.Chmod(p, mode)
		if _, err := Load(p); err != nil {
			t.Errorf("%04o refused: %v", mode, err)
		}
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("loaded a directory")
	}
	fifo := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		if _, err := Load(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("fifo: %v", err)
		}
	}
}

const secretValue = "s3cr3t-Value-4711"

func TestSecretKeysRefusedWithTheEnvironmentVariable(t *testing.T) {
	for _, c := range []struct{ yaml, key, hint string }{
		{"do_token: @V\n", `"do_token"`, "DIGITALOCEAN_TOKEN"},
		{"digitalocean_token: @V\n", `"digitalocean_token"`, "DIGITALOCEAN_TOKEN"},
		{"hcloud_token: @V\n", `"hcloud_token"`, "HCLOUD_TOKEN"},
		{"hetzner_token: @V\n", `"hetzner_token"`, "HCLOUD_TOKEN"},
		{"token: @V\n", `"token"`, "DIGITALOCEAN_TOKEN"},
		{"api_token: @V\n", `"api_token"`, "HCLOUD_TOKEN"},
		{"provider:\n  digitalocean:\n    token: @V\n", `"provider.digitalocean.token"`, "DIGITALOCEAN_TOKEN"},
		{"hetzner: {api-token: @V}\n", `"hetzner.api-token"`, "HCLOUD_TOKEN"},
		{"aws:\n  aws_access_key_id: @V\n", `"aws.aws_access_key_id"`, "~/.aws"},
		{"aws:\n  aws_secret_access_key: @V\n", `"aws.aws_secret_access_key"`, "aws.source_profile"},
		{"aws: {secret_access_key: @V}\n", `"aws.secret_access_key"`, "~/.aws"},
		{"aws: {access_key_id: @V}\n", `"aws.access_key_id"`, "~/.aws"},
		{"aws: {session_token: @V}\n", `"aws.session_token"`, "~/.aws"},
		{"sheds:\n  dev:\n    aws: {secretAccessKey: @V}\n", `"sheds.dev.aws.secretAccessKey"`, "~/.aws"},
		{"auth_key: @V\n", `"auth_key"`, "environment"},
		{"docker:\n  password: @V\n", `"docker.password"`, "docker login"},
		{"docker:\n  registries: [{host: ghcr.io, password: @V}]\n", `"docker.registries[].password"`, "docker login"},
		{"sheds: {dev: {docker: {registry_password: @V}}}\n", `"sheds.dev.docker.registry_password"`, "docker login"},
		{"secret: @V\n", `"secret"`, "environment"},
		{"sheds: {token: {docker: {password: @V}}}\n", `"sheds.token.docker.password"`, "docker login"},
		{"ssh: {private_key: @V}\n", `"ssh.private_key"`, "~/.ssh"},
		{"x: &a {k: 1}\nssh:\n  <<: *a\n  PRIVATE-KEY: @V\n", `"ssh.PRIVATE-KEY"`, "ssh-agent"},
	} {
		body := strings.ReplaceAll(c.yaml, "@V", secretValue)
		path := write(t, body)
		_, err := Load(path)
		if err == nil {
			t.Errorf("loaded\n%s", body)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "key "+c.key) || !strings.Contains(msg, c.hint) || !strings.Contains(msg, "secret") {
			t.Errorf("%s: error does not name key %s and %s:\n%s", strings.TrimSpace(body), c.key, c.hint, msg)
		}
		// The path is the test's temporary folder, whose random digits
		// can hold the secret's "4711": look for the secret in the rest.
		if rest := strings.ReplaceAll(msg, path, "CONFIG"); strings.Contains(rest, secretValue) || strings.Contains(rest, "4711") {
			t.Errorf("the error echoes the secret: %s", msg)
		}
		if strings.Contains(msg, "unknown key") {
			t.Errorf("a secret key is reported as merely unknown: %s", msg)
		}
	}
}

func TestUnknownKeysAreNamed(t *testing.T) {
	p := write(t, `ssh:
  mode: auto
aws:
  sesion_duration: 1h
  region: us-east-1
sheds:
  dev:
    docker: {registeries: [ghcr.io]}
    aws: {role: "arn:aws:iam::123456789012:role/x", policy: "{}"}
provider: qemu
SSH: {}
`)
	_, err := Load(p)
	if err == nil {
		t.Fatal("loaded unknown keys")
	}
	msg := err.Error()
	for _, key := range []string{"aws.sesion_duration", "sheds.dev.docker.registeries", "sheds.dev.aws.policy", "provider", "SSH"} {
		if !strings.Contains(msg, `config: unknown key "`+key+`" in `+p) {
			t.Errorf("%s not named in:\n%s", key, msg)
		}
	}
	if !strings.Contains(msg, `did you mean "aws.session_duration"`) || !strings.Contains(msg, `did you mean "ssh"`) {
		t.Errorf("no suggestion in:\n%s", msg)
	}
	if n := strings.Count(msg, "unknown key"); n != 5 {
		t.Errorf("%d unknown keys reported, want 5:\n%s", n, msg)
	}
}

func TestDecodingErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"aws: {session_duration: 3600}\n", "config: aws.session_duration: 3600 is not a duration"},
		{"approval: {session_ttl: forever}\n", "config: approval.session_ttl: \"forever\" is not a duration"},
		{"limits: {burst: 1.5}\n", "config: limits.burst: 1.5 is not a whole number"},
		{"ssh: 5\n", "config: ssh: expected a map or struct"},
		{"ssh: {keys: SHA256:x}\n", "config: ssh.keys"},
		{"approval: {enabled: maybe}\n", "config: approval.enabled"},
		{"- a\n", "the top level must be a mapping"},
		{"ssh: {mode: [\n", "config: parsing"},
		{"a: 1\na: 2\n", `config: key "a" appears twice`},
		{"sheds: {dev: {}, dev: {}}\n", `config: key "sheds.dev" appears twice`},
		{"sheds: {Dev: {}}\n", `config: shed name "Dev"`},
		{"sheds: {\"a.b\": {}}\n", `config: shed name "a.b"`},
	} {
		_, err := load(t, c.yaml)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
}

func TestDurations(t *testing.T) {
	c := mustLoad(t, `aws: {session_duration: 1h30m, cache_refresh_before: 90s}
approval: {session_ttl: 8h, prompt_timeout: 45s}
sheds: {dev: {approval: {session_ttl: 10m, prompt_timeout: 5s}}}
`)
	if c.AWS.SessionDuration != 90*time.Minute || c.AWS.CacheRefreshBefore != 90*time.Second ||
		c.Approval.SessionTTL != 8*time.Hour || c.Approval.PromptTimeout != 45*time.Second {
		t.Fatalf("durations %+v %+v", c.AWS, c.Approval)
	}
	s := c.ForShed("dev")
	if s.Approval.SessionTTL != 10*time.Minute || s.Approval.PromptTimeout != 5*time.Second {
		t.Fatalf("override durations %+v", s.Approval)
	}
	if d := Default().AWS.CacheRefreshBefore; d != 15*time.Minute {
		t.Errorf("default cache_refresh_before %s, want botocore's 15m", d)
	}
	if c := mustLoad(t, "aws: {session_duration: 15m}"); c.AWS.CacheRefreshBefore != 450*time.Second {
		t.Errorf("the shortest session STS grants keeps a refresh window of %s, want half of it", c.AWS.CacheRefreshBefore)
	}
	for session, want := range map[string]time.Duration{"16m": 8 * time.Minute, "30m": 15 * time.Minute, "2h": 15 * time.Minute} {
		if c := mustLoad(t, "aws: {session_duration: "+session+"}"); c.AWS.CacheRefreshBefore != want {
			t.Errorf("a %s session refreshes %s before it ends, want %s", session, c.AWS.CacheRefreshBefore, want)
		}
	}
	if c := mustLoad(t, "aws: {session_duration: 16m, cache_refresh_before: 10m}"); c.AWS.CacheRefreshBefore != 10*time.Minute {
		t.Errorf("a window the config sets became %s", c.AWS.CacheRefreshBefore)
	}
}

func TestValidateRules(t *testing.T) {
	const fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
	for _, c := range []struct {
		yaml string
		want string // "" = valid
	}{
		{"ssh: {mode: auto}", ""},
		{"ssh: {mode: agent-forward}", ""},
		{"ssh: {mode: local-keys}", ""},
		{"ssh: {mode: forward}", `config: ssh.mode: "forward" is not one of`},
		{"ssh: {mode: ''}", "config: ssh.mode:"},
		{"ssh: {keys: ['" + fp + "']}", ""},
		{"ssh: {keys: ['" + fp + "=']}", ""},
		{"ssh: {keys: ['" + fp[:40] + "']}", "config: ssh.keys[0]:"},
		{"ssh: {keys: ['MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48']}", "config: ssh.keys[0]:"},
		{"ssh: {keys: ['" + fp + "', 'sha256:abc']}", "config: ssh.keys[1]:"},
		{"sheds: {dev: {ssh: {keys: [nope]}}}", "config: sheds.dev.ssh.keys[0]:"},
		{"ssh: {destinations: [github.com, '*.corp.example', '[10.0.0.5]:2222']}", ""},
		{"ssh: {destinations: ['github.com gitlab.com']}", "config: ssh.destinations[0]:"},
		{"sheds: {dev: {ssh: {destinations: ['', x]}}}", "config: sheds.dev.ssh.destinations[0]:"},
		{"sheds: {dev: {ssh: {destinations: ['!evil.example']}}}", "config: sheds.dev.ssh.destinations[0]:"},

		{"approval: {policy: per-request}", ""},
		{"approval: {policy: per-shed}", ""},
		{"approval: {policy: none}", ""},
		{"approval: {policy: always}", `config: approval.policy: "always" is not one of`},
		{"sheds: {dev: {approval: {policy: sometimes}}}", "config: sheds.dev.approval.policy:"},
		{"approval: {session_ttl: 0s}", "config: approval.session_ttl:"},
		{"approval: {prompt_timeout: -5s}", "config: approval.prompt_timeout:"},
		{"approval: {prompt_timeout: 45s}", ""},
		{"approval: {prompt_timeout: 46s}", "config: approval.prompt_timeout: 46s is longer than a shed can wait for an answer and the work a yes starts (1m0s in all); use 45s or less"},
		{"approval: {prompt_timeout: 60s}", "config: approval.prompt_timeout: 1m0s is longer than a shed can wait"},
		{"sheds: {dev: {approval: {prompt_timeout: 5m}}}", "config: sheds.dev.approval.prompt_timeout: 5m0s is longer than a shed can wait"},
		{"sheds: {dev: {approval: {session_ttl: 0s}}}", "config: sheds.dev.approval.session_ttl:"},
		{"sheds: {dev: {approval: {prompt_timeout: -1s}}}", "config: sheds.dev.approval.prompt_timeout:"},
		{"approval: {require: {ssh_sign: [git, '']}}", "config: approval.require.ssh_sign[1]:"},

		{"aws: {session_duration: 15m}", ""}, // the default refresh window halves to fit
		{"aws: {session_duration: 15m, cache_refresh_before: 15m}", "config: aws.cache_refresh_before: 15m0s must be shorter than aws.session_duration (15m0s)"},
		{"aws: {session_duration: 12h}", ""},
		{"aws: {session_duration: 14m}", "config: aws.session_duration:"},
		{"aws: {session_duration: 13h}", "config: aws.session_duration:"},
		{"aws: {cache_refresh_before: 0s}", "config: aws.cache_refresh_before:"},
		{"aws: {session_duration: 15m, cache_refresh_before: 20m}", "config: aws.cache_refresh_before:"},
		{"aws: {source_profile: ''}", "config: aws.source_profile:"},
		{"aws: {region: 'US East'}", "config: aws.region:"},
		{"aws: {sts_endpoint: 'http://127.0.0.1:9000'}", ""},
		{"aws: {sts_endpoint: '127.0.0.1:9000'}", "config: aws.sts_endpoint:"},
		{"aws: {external_id: 'a'}", "config: aws.external_id:"},
		{"aws: {external_id: 'spuff-dev_1'}", ""},
		{"aws: {default_role: 'arn:aws:iam::123456789012:role/dev'}", ""},
		{"aws: {default_role: 'arn:aws-us-gov:iam::123456789012:role/path/dev'}", ""},
		{"aws: {default_role: 'arn:aws-cn:iam::123456789012:role/x'}", ""},
		{"aws: {default_role: 'arn:minio:iam:::role/dummy-internal'}", ""},
		{"aws: {default_role: 'arn:aws:iam::12345:role/dev'}", "config: aws.default_role:"},
		{"aws: {default_role: 'arn:aws:iam::123456789012:user/dev'}", "config: aws.default_role:"},
		{"aws: {default_role: 'dev'}", `config: aws.default_role: "dev" is not a role ARN`},
		{"sheds: {dev: {aws: {role: 'role/dev'}}}", "config: sheds.dev.aws.role:"},
		{"sheds: {dev: {aws: {session_policy: '{\"Version\":\"2012-10-17\",\"Statement\":[]}'}}}", ""},
		{"sheds: {dev: {aws: {session_policy: '{\"Version\":'}}}", "config: sheds.dev.aws.session_policy:"},
		{"sheds: {dev: {aws: {session_policy: '[1]'}}}", "config: sheds.dev.aws.session_policy:"},
		{"sheds: {dev: {aws: {region: 'x y'}}}", "config: sheds.dev.aws.region:"},

		{"limits: {requests_per_second: 0.5, burst: 1}", ""},
		{"limits: {requests_per_second: 0}", "config: limits.requests_per_second:"},
		{"limits: {requests_per_second: -1}", "config: limits.requests_per_second:"},
		{"limits: {requests_per_second: .inf}", "config: limits.requests_per_second:"},
		{"limits: {burst: 0}", "config: limits.burst:"},
		{"sheds: {dev: {limits: {burst: 0}}}", ""}, // zero in an override inherits
		{"sheds: {dev: {limits: {burst: -1}}}", "config: sheds.dev.limits.burst:"},

		{"docker: {registries: [ghcr.io, 'localhost:5000', '127.0.0.1:5000', '[::1]:5000', 'https://index.docker.io/v1/', 'http://reg.local:8080', my_registry]}", ""},
		{"docker: {registries: ['']}", "config: docker.registries[0]:"},
		{"docker: {registries: [ghcr.io, 'ftp://x']}", "config: docker.registries[1]:"},
		{"docker: {registries: ['ghcr.io:99999']}", "config: docker.registries[0]:"},
		{"docker: {registries: ['ghcr io']}", "config: docker.registries[0]:"},
		{"docker: {registries: ['https://']}", "config: docker.registries[0]:"},
		{"sheds: {dev: {docker: {registries: ['-bad-.io']}}}", "config: sheds.dev.docker.registries[0]:"},

		{"sheds: {dev: {namespaces: [ssh-agent, docker-credentials]}}", ""},
		{"sheds: {dev: {namespaces: []}}", ""},
		{"sheds: {dev: {namespaces: [agent]}}", `config: sheds.dev.namespaces[0]: "agent" is not one of`},
		{"sheds: {dev: {namespaces: [ssh-agent, SSH-agent]}}", "config: sheds.dev.namespaces[1]:"},
		{"sheds: {a0-b: {}, '9': {}, api-token: {}, secret: {}}", ""}, // names, not keys
		{"sheds: {'-dev': {}}", `shed name "-dev"`},
		{"sheds: {" + strings.Repeat("a", 64) + ": {}}", "shed name"},
		// Each name's length bound, at it and one past it.
		{"sheds: {" + strings.Repeat("a", 63) + ": {}}", ""},
		{"aws: {region: " + strings.Repeat("a", 63) + "}", ""},
		{"aws: {region: " + strings.Repeat("a", 64) + "}", "config: aws.region:"},
		{"provision: {user: " + strings.Repeat("u", 32) + "}", ""},
		{"provision: {user: " + strings.Repeat("u", 33) + "}", "config: provision.user:"},
		{"hetzner: {location: " + strings.Repeat("l", 64) + "}", ""},
		{"hetzner: {location: " + strings.Repeat("l", 65) + "}", "config: hetzner.location:"},
		{"docker: {registries: [" + strings.Repeat("r", 63) + ".io]}", ""},
		{"docker: {registries: [" + strings.Repeat("r", 64) + ".io]}", "config: docker.registries[0]:"},

		{"audit: {path: /var/log/spuff.log}", ""},
		{"audit: {path: ~/audit.log}", ""},
		{"audit: {path: audit.log}", "config: audit.path:"},
		{"audit: {durability: fsync}", ""},
		{"audit: {durability: always}", "config: audit.durability:"},
	} {
		_, err := load(t, c.yaml+"\n")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.yaml, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: accepted, want %q", c.yaml, c.want)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: error\n%v\nwant %q", c.yaml, err, c.want)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := load(t, "ssh: {mode: x}\napproval: {policy: y}\nlimits: {burst: 0}\nsheds: {dev: {namespaces: [z]}}\n")
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 5 { // the file line and four problems
		t.Fatalf("%d lines:\n%v", len(lines), err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "config: ") || l != strings.ToLower(l[:9])+l[9:] {
			t.Errorf("line %q", l)
		}
	}
}

func TestAuditPath(t *testing.T) {
	t.Setenv("HOME", "/home/dev")
	t.Setenv("XDG_DATA_HOME", "")
	if c := mustLoad(t, "audit: {path: ~/logs/a.log}\n"); c.Audit.Path != "/home/dev/logs/a.log" {
		t.Errorf("~ not expanded: %q", c.Audit.Path)
	}
	if c := mustLoad(t, "ssh: {mode: auto}\n"); c.Audit.Path != "/home/dev/.local/share/shed/extensions-audit.log" {
		t.Errorf("default audit path %q", c.Audit.Path)
	}
	if c := mustLoad(t, "audit: {path: ''}\n"); c.Audit.Path != DefaultAuditPath() {
		t.Errorf("empty audit path not defaulted: %q", c.Audit.Path)
	}
}

func TestForShedOverrides(t *testing.T) {
	const (
		fpA = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
		fpB = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
	)
	c := mustLoad(t, `
ssh: {mode: local-keys, keys: ["`+fpA+`"]}
aws:
  default_role: arn:aws:iam::123456789012:role/dev
  region: us-east-1
docker: {registries: [ghcr.io]}
approval:
  enabled: true
  policy: per-session
  session_ttl: 4h
  require: {ssh_sign: [git]}
limits: {requests_per_second: 20, burst: 50}
sheds:
  plain: {}
  locked:
    namespaces: [ssh-agent]
    ssh: {keys: ["`+fpB+`"]}
    aws:
      role: arn:aws:iam::123456789012:role/locked
      session_policy: '{"Version":"2012-10-17","Statement":[]}'
      region: eu-west-1
    docker: {registries: [quay.io], allow_all: false}
    approval: {enabled: false, policy: per-request, session_ttl: 5m, require: {aws: true}}
    limits: {burst: 5}
  open:
    ssh: {keys: []}
    docker: {allow_all: true}
`)
	plain := c.ForShed("plain")
	unnamed := c.ForShed("not-in-config")
	for _, s := range []Shed{plain, unnamed} {
		if !slices.Equal(s.Namespaces, []string{"ssh-agent", "aws-credentials", "docker-credentials"}) || !slices.Equal(s.SSH.Keys, []string{fpA}) ||
			s.SSH.Mode != "local-keys" || s.Role != "arn:aws:iam::123456789012:role/dev" || s.SessionPolicy != "" ||
			s.AWS.Region != "us-east-1" || !slices.Equal(s.Docker.Registries, []string{"ghcr.io"}) || s.Docker.AllowAll ||
			!s.Approval.Enabled || s.Approval.Policy != "per-session" || s.Approval.SessionTTL != 4*time.Hour ||
			!slices.Equal(s.Approval.Require.SSHSign, []string{"git"}) || s.Limits != (Limits{20, 50}) {
			t.Errorf("%s does not inherit the global sections: %+v", s.Name, s)
		}
	}
	l := c.ForShed("locked")
	if !slices.Equal(l.Namespaces, []string{"ssh-agent"}) || !l.Allows("ssh-agent") || l.Allows("aws-credentials") {
		t.Errorf("namespaces %v", l.Namespaces)
	}
	if !slices.Equal(l.SSH.Keys, []string{fpB}) || l.SSH.Mode != "local-keys" {
		t.Errorf("ssh %+v", l.SSH)
	}
	if l.Role != "arn:aws:iam::123456789012:role/locked" || l.SessionPolicy == "" || l.AWS.Region != "eu-west-1" {
		t.Errorf("aws role %q policy %q region %q", l.Role, l.SessionPolicy, l.AWS.Region)
	}
	if !slices.Equal(l.Docker.Registries, []string{"quay.io"}) || l.Docker.AllowAll {
		t.Errorf("docker %+v", l.Docker)
	}
	if l.Approval.Enabled || l.Approval.Policy != "per-request" || l.Approval.SessionTTL != 5*time.Minute || !l.Approval.Require.AWS {
		t.Errorf("approval %+v", l.Approval)
	}
	if l.Limits != (Limits{20, 5}) {
		t.Errorf("limits %+v", l.Limits)
	}
	o := c.ForShed("open")
	if len(o.SSH.Keys) != 0 || o.SSH.Keys == nil {
		t.Errorf("an explicit empty key list must mean every key, not inherit: %#v", o.SSH.Keys)
	}
	if !o.Docker.AllowAll || !slices.Equal(o.Docker.Registries, []string{"ghcr.io"}) {
		t.Errorf("docker %+v", o.Docker)
	}
	// The global config is not changed through a resolved shed.
	l.SSH.Keys[0] = "x"
	if c.Sheds["locked"].SSH.Keys[0] != fpB || c.SSH.Keys[0] != fpA {
		t.Error("ForShed shares slices with the config")
	}
}

func TestSampleLoadsAndNamesEveryKey(t *testing.T) {
	c, err := load(t, Sample())
	if err != nil {
		t.Fatalf("the sample does not load: %v", err)
	}
	if _, ok := c.Sheds["my-service"]; !ok {
		t.Fatal("the sample has no shed section")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(Sample()), &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	var collect func(n *yaml.Node, path string)
	collect = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if path == "sheds" {
				k = "NAME"
			}
			have[join(path, k)] = true
			collect(n.Content[i+1], join(path, k))
		}
	}
	collect(doc.Content[0], "")
	var want []string
	var keys func(t reflect.Type, path string)
	keys = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			for k, ft := range fieldsOf(t) {
				want = append(want, join(path, k))
				keys(ft, join(path, k))
			}
		case reflect.Map:
			keys(t.Elem(), join(path, "NAME"))
		}
	}
	keys(reflect.TypeFor[Config](), "")
	for _, k := range want {
		if !have[k] {
			t.Errorf("the sample does not show %s", k)
		}
	}
	if len(want) < 40 {
		t.Fatalf("only %d keys found in the types", len(want))
	}
}

// FuzzLoad feeds arbitrary bytes through Load as a config file: it must
// never panic, hang, or accept what Validate refuses.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(Sample()))
	f.Add([]byte("aws: {session_duration: 3600}\n"))
	f.Add([]byte("sheds: {dev: {ssh: {keys: [x]}, aws: {role: y, session_policy: '{'}}}\n"))
	f.Add([]byte("x: &a [*a, *a]\ny: &b [*a, *a]\n"))
	f.Add([]byte("ssh:\n  <<: {mode: auto}\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Add([]byte("limits: {requests_per_second: .nan, burst: 1e30}\n"))
	p := filepath.Join(f.TempDir(), "config.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err == nil {
			if c == nil {
				t.Fatal("no config and no error")
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted an invalid config: %v", verr)
			}
			for name := range c.Sheds {
				_ = c.ForShed(name)
			}
		}
	})
}

// A URL's userinfo is a credential: every URL-valued key refuses it, says
// where the credential belongs, and never repeats it.
func TestURLUserinfoRefusedAndNeverEchoed(t *testing.T) {
	const user, pass = "AKIAEXAMPLEUSER", "wJalrXUtnFEMIEXAMPLEPASS"
	for _, c := range []struct{ yaml, key, hint string }{
		{"aws: {sts_endpoint: 'http://@U:@P@sts.example:9000'}", "config: aws.sts_endpoint:", "aws.source_profile"},
		{"aws: {sts_endpoint: 'https://@U@sts.example'}", "config: aws.sts_endpoint:", "aws.source_profile"},
		{"docker: {registries: ['https://@U:@P@reg.example']}", "config: docker.registries[0]:", "docker login"},
		{"docker: {registries: ['@U:@P@reg.example:5000']}", "config: docker.registries[0]:", "docker login"},
		{"sheds: {dev: {docker: {registries: ['http://@U:@P@reg.example']}}}", "config: sheds.dev.docker.registries[0]:", "docker login"},
	} {
		body := strings.NewReplacer("@U", user, "@P", pass).Replace(c.yaml)
		_, err := load(t, body+"\n")
		if err == nil {
			t.Errorf("%s: accepted", body)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.key) || !strings.Contains(msg, c.hint) {
			t.Errorf("%s: error does not name %s and %q:\n%s", body, c.key, c.hint, msg)
		}
		if strings.Contains(msg, pass) || strings.Contains(msg, user) {
			t.Errorf("%s: error repeats the userinfo:\n%s", body, msg)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		`Post "http://KEY:SECRET@sts.example:9000/": dial tcp: refused`: `Post "http://REDACTED@sts.example:9000/": dial tcp: refused`,
		"https://user@reg.example/v2/ and ssh://dev@host":               "https://REDACTED@reg.example/v2/ and ssh://REDACTED@host",
		"http://sts.example/path?x=a@b":                                 "http://sts.example/path?x=a@b",
		"no url here: a@b":                                              "no url here: a@b",
		"HTTP://K%40:S@h":                                               "HTTP://REDACTED@h",
	} {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSSHDestinationsOverride(t *testing.T) {
	c, err := Parse([]byte("ssh: {destinations: [github.com]}\nsheds:\n  corp: {ssh: {destinations: ['*.corp.example']}}\n  open: {ssh: {destinations: []}}\n  plain: {}\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	for shed, want := range map[string][]string{"corp": {"*.corp.example"}, "open": {}, "plain": {"github.com"}} {
		if got := c.ForShed(shed).SSH.Destinations; !slices.Equal(got, want) {
			t.Errorf("%s: destinations %q, want %q", shed, got, want)
		}
	}
}
