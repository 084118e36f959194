// Package testenv finds the real peers tests talk to (OpenSSH, git, MinIO, a
// registry…) and builds this repository's binaries for tests that run them as
// processes. A missing peer skips a test on a developer's machine but fails
// it under CI (CI=true) or SPUFF_REQUIRE_PEERS=1, so CI cannot pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Strict reports whether missing peers fail rather than skip.
func Strict() bool {
	return os.Getenv("CI") != "" || os.Getenv("SPUFF_REQUIRE_PEERS") == "1"
}

// Missing skips t, or fails it when Strict, naming what to install.
func Missing(t testing.TB, what, fix string) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s is missing (%s); run `make deps`", what, fix)
	}
	t.Skipf("%s is missing (%s); run `make deps` to run this test", what, fix)
}

// Tool returns the path of an external program, looking in PATH, /usr/sbin
// and the spuff cache's bin dir.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/lib/openssh", filepath.Join(CacheDir(), "bin")} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	Missing(t, name, "not in PATH, /usr/sbin or "+filepath.Join(CacheDir(), "bin"))
	return ""
}

// CacheDir is where setup scripts keep downloads and builds (~/.cache/spuff).
func CacheDir() string {
	if d := os.Getenv("SPUFF_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "spuff")
}

// RepoRoot returns the module root.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string]string{}
)

// GoBinary builds a main package of this repo (e.g. "./guest/cmd/spuff-guest")
// once per test process and returns the binary's path.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	return GoBinaryTags(t, pkg)
}

// GoBinaryTags is GoBinary built with build tags (e.g. "spuff_testprovider").
func GoBinaryTags(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := pkg + "#" + strings.Join(tags, ",")
	if p, ok := built[key]; ok {
		return p
	}
	if builtDir == "" {
		d, err := os.MkdirTemp("", "spuff-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		builtDir = d
	}
	name, args := filepath.Base(strings.TrimSuffix(pkg, "/")), []string{"build"}
	if len(tags) > 0 {
		name += "-" + strings.Join(tags, "-")
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	out := filepath.Join(builtDir, name)
	cmd := exec.Command("go", append(args, "-o", out, pkg)...)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	built[key] = out
	return out
}
