// Package dockercreds is the host side of the docker-credentials namespace:
// it reads the host's own docker configuration and credential helpers, and
// hands a shed the login for a registry only when that shed's allowlist
// names it. It never writes: store and erase are refused.
package dockercreds

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spuff-dev/spuff/app/config"
)

// ErrNotFound means the host has no credentials for the registry.
var ErrNotFound = errors.New("dockercreds: no credentials for this registry on the host")

// TokenUsername is the username docker uses for an identity token.
const TokenUsername = "<token>"

// Creds are one registry's credentials. Secret is a password or, with
// Username TokenUsername, an identity token.
type Creds struct {
	Username string
	Secret   string
}

// Store reads credentials the way the docker CLI finds them on the host:
// credHelpers, then credsStore, then the inline auths of config.json. It
// reads config.json afresh on every call, so a `docker login` on the host
// takes effect at once.
type Store struct {
	// ConfigDir holds config.json; empty means $DOCKER_CONFIG, else ~/.docker.
	ConfigDir string
	// Env is appended to the environment of helper processes (tests point
	// GNUPGHOME and PASSWORD_STORE_DIR at their own).
	Env []string
	// Timeout bounds one helper run (10s): a helper waiting on a pinentry
	// nobody sees must not hang the shed's request forever.
	Timeout time.Duration
	// Logger receives helper failures; nil discards them.
	Logger *slog.Logger
}

// hostConfig is the part of config.json that says where credentials live.
type hostConfig struct {
	Auths       map[string]authEntry `json:"auths"`
	CredsStore  string               `json:"credsStore"`
	CredHelpers map[string]string    `json:"credHelpers"`
}

type authEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// helperName is what may follow "docker-credential-": a program name, never a path.
var helperName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (s *Store) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ConfigPath returns the config.json this store reads.
func (s *Store) ConfigPath() (string, error) {
	dir := s.ConfigDir
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("dockercreds: finding the home directory: %w", err)
		}
		dir = filepath.Join(home, ".docker")
	}
	return filepath.Join(dir, "config.json"), nil
}

func (s *Store) load() (*hostConfig, error) {
	p, err := s.ConfigPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &hostConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dockercreds: reading %s: %w", p, err)
	}
	var c hostConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("dockercreds: parsing %s: %w", p, err)
	}
	return &c, nil
}

// Get returns the host's credentials for registry, which must already be
// normalized (Normalize). It returns ErrNotFound when no source has them.
func (s *Store) Get(ctx context.Context, registry string) (Creds, error) {
	c, err := s.load()
	if err != nil {
		return Creds{}, err
	}
	// Sorted, so that two spellings of one registry resolve the same way every time.
	for _, key := range slices.Sorted(maps.Keys(c.CredHelpers)) {
		if norm(key) != registry {
			continue
		}
		cr, err := s.fromHelper(ctx, c.CredHelpers[key], registry)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return cr, err
		}
	}
	if c.CredsStore != "" {
		cr, err := s.fromHelper(ctx, c.CredsStore, registry)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return cr, err
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.Auths)) {
		if norm(key) != registry {
			continue
		}
		if cr, ok := c.Auths[key].creds(); ok {
			return cr, nil
		}
	}
	return Creds{}, ErrNotFound
}

// List maps every registry the host has credentials for (normalized) to its
// username. A helper that fails is logged and skipped, so one broken helper
// does not hide the rest.
func (s *Store) List(ctx context.Context) (map[string]string, error) {
	c, err := s.load()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for key, a := range c.Auths {
		if r := norm(key); r != "" {
			if cr, ok := a.creds(); ok {
				out[r] = cr.Username
			}
		}
	}
	if c.CredsStore != "" {
		if m, err := s.listHelper(ctx, c.CredsStore); err == nil {
			for k, user := range m {
				if r := norm(k); r != "" && user != "" {
					out[r] = user
				}
			}
		}
	}
	for key, name := range c.CredHelpers {
		r := norm(key)
		if r == "" {
			continue
		}
		m, err := s.listHelper(ctx, name)
		if err != nil {
			continue
		}
		for k, user := range m {
			if norm(k) == r && user != "" {
				out[r] = user
			}
		}
	}
	return out, nil
}

// norm is Normalize for keys from the host's own files, where a key we cannot
// read simply matches nothing.
func norm(key string) string {
	r, err := Normalize(key)
	if err != nil {
		return ""
	}
	return r
}

func (a authEntry) creds() (Creds, bool) {
	if a.IdentityToken != "" {
		return Creds{Username: TokenUsername, Secret: a.IdentityToken}, true
	}
	if a.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a.Auth))
		if err != nil {
			return Creds{}, false
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" {
			return Creds{}, false
		}
		return Creds{Username: user, Secret: strings.Trim(pass, "\x00")}, true
	}
	if a.Username != "" && a.Password != "" {
		return Creds{Username: a.Username, Secret: a.Password}, true
	}
	return Creds{}, false
}

// fromHelper asks docker-credential-NAME for registry. Helpers key entries
// by whatever spelling `docker login` used; when the canonical spelling
// misses, the helper's list says which of its keys means the same registry.
func (s *Store) fromHelper(ctx context.Context, name, registry string) (Creds, error) {
	cr, err := s.getHelper(ctx, name, registry)
	if !errors.Is(err, ErrNotFound) {
		return cr, err
	}
	keys, lerr := s.listHelper(ctx, name)
	if lerr != nil {
		return Creds{}, ErrNotFound
	}
	for k := range keys {
		if k == registry || norm(k) != registry {
			continue
		}
		if cr, err := s.getHelper(ctx, name, k); !errors.Is(err, ErrNotFound) {
			return cr, err
		}
	}
	return Creds{}, ErrNotFound
}

func (s *Store) getHelper(ctx context.Context, name, key string) (Creds, error) {
	prog, run, err := s.program(ctx, name)
	if err != nil {
		return Creds{}, err
	}
	c, err := client.Get(prog, key)
	if credentials.IsErrCredentialsNotFound(err) {
		return Creds{}, ErrNotFound
	}
	if err != nil {
		return Creds{}, s.helperFailed(name, "get", run, err)
	}
	// Some helpers (Debian's docker-credential-pass among them) answer a
	// miss with empty credentials and success.
	if c.Username == "" && c.Secret == "" {
		return Creds{}, ErrNotFound
	}
	return Creds{Username: c.Username, Secret: c.Secret}, nil
}

func (s *Store) listHelper(ctx context.Context, name string) (map[string]string, error) {
	prog, run, err := s.program(ctx, name)
	if err != nil {
		return nil, err
	}
	m, err := client.List(prog)
	if err != nil {
		return nil, s.helperFailed(name, "list", run, err)
	}
	return m, nil
}

// HelperError is a host credential helper that failed (not a miss).
type HelperError struct {
	Helper string // docker-credential-NAME
	Op     string
	Err    error
}

func (e *HelperError) Error() string {
	return fmt.Sprintf("dockercreds: %s %s failed: %v", e.Helper, e.Op, e.Err)
}

func (e *HelperError) Unwrap() error { return e.Err }

// helperFailed logs why a helper failed without echoing its stdout, which is
// where a helper writes secrets; its stderr and exit status say enough.
func (s *Store) helperFailed(name, op string, run *runInfo, err error) error {
	cause := run.err
	if cause == nil {
		// The helper exited 0 but its answer did not decode; client's error
		// may quote the answer, so it stays out of logs and replies.
		cause = errors.New("unreadable answer")
	}
	s.log().Warn("dockercreds: credential helper failed", "helper", "docker-credential-"+name, "op", op, "err", cause, "stderr", config.RedactURLs(run.stderr.String()))
	return &HelperError{Helper: "docker-credential-" + name, Op: op, Err: cause}
}

// program builds the client.ProgramFunc for docker-credential-NAME.
// client.NewShellProgramFunc would serve too, but it cannot be cancelled,
// sends the helper's stderr to ours unbounded, and folds the exit error into
// a string together with the helper's stdout.
func (s *Store) program(ctx context.Context, name string) (client.ProgramFunc, *runInfo, error) {
	if !helperName.MatchString(name) {
		return nil, nil, fmt.Errorf("dockercreds: credential helper name %q in the host config.json is not a program name", name)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	run := &runInfo{stderr: tailBuffer{max: 4096}}
	return func(args ...string) client.Program {
		return &program{ctx: ctx, timeout: timeout, name: "docker-credential-" + name, args: args, env: s.Env, run: run}
	}, run, nil
}

// runInfo is what a helper run leaves behind for error reports.
type runInfo struct {
	stderr tailBuffer
	err    error
}

// program runs one helper action under a deadline.
type program struct {
	ctx     context.Context
	timeout time.Duration
	name    string
	args    []string
	env     []string
	in      io.Reader
	run     *runInfo
}

var _ client.Program = (*program)(nil)

func (p *program) Input(in io.Reader) { p.in = in }

func (p *program) Output() ([]byte, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.name, p.args...)
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdin = p.in
	cmd.Stderr = &p.run.stderr
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%s did not answer within %s: %w", p.name, p.timeout, ctx.Err())
	}
	p.run.err = err
	return out, err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if t == nil {
		return ""
	}
	return strings.TrimSpace(t.buf.String())
}
