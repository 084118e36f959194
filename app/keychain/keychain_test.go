package keychain_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spuff-dev/spuff/app/keychain"
	"github.com/spuff-dev/spuff/app/keychain/keychaintest"
	"github.com/spuff-dev/spuff/test/testenv"
)

// conformance is what every Store must do; it runs against each one.
func conformance(t *testing.T, s keychain.Store) {
	t.Helper()
	if _, err := s.Get("absent"); !errors.Is(err, keychain.ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want ErrNotFound", err)
	}
	if err := s.Delete("absent"); err != nil {
		t.Fatalf("Delete(absent) = %v, want nil", err)
	}
	// Binary values of awkward lengths: empty, one AES block, not a block.
	for i, v := range [][]byte{{}, bytes.Repeat([]byte{0}, 16), []byte("grant\x00\xff\n{\"x\":1}"), bytes.Repeat([]byte("ab"), 5000)} {
		key := fmt.Sprintf("conf-%d", i)
		if err := s.Set(key, v); err != nil {
			t.Fatalf("Set(%s): %v", key, err)
		}
		got, err := s.Get(key)
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("Get(%s) = %d bytes, want the %d bytes set", key, len(got), len(v))
		}
	}
	if err := s.Set("k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("k", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("k"); err != nil || string(got) != "two" {
		t.Fatalf("after overwrite Get = %q, %v; want two", got, err)
	}
	if err := s.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("k"); !errors.Is(err, keychain.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "../escape", ".hidden", "a/b", "sp ace", strings.Repeat("x", 129)} {
		if err := s.Set(bad, []byte("x")); err == nil {
			t.Errorf("Set(%q) accepted a bad key", bad)
		}
		if _, err := s.Get(bad); err == nil || errors.Is(err, keychain.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want a bad-key error", bad, err)
		}
	}
	// Concurrent writers to distinct keys must not lose each other.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := s.Set(fmt.Sprintf("par-%d", i), []byte{byte(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 8 {
		if got, err := s.Get(fmt.Sprintf("par-%d", i)); err != nil || !bytes.Equal(got, []byte{byte(i)}) {
			t.Errorf("par-%d = %v, %v", i, got, err)
		}
	}
}

func TestMemory(t *testing.T) { conformance(t, keychain.NewMemory()) }

func TestFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	s, err := keychain.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s)

	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v; want 0700", fi.Mode(), err)
	}
	if err := s.Set("secret", []byte("v")); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(filepath.Join(dir, "secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// A file someone else could have written is refused, not trusted.
	if err := os.Chmod(filepath.Join(dir, "secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("secret"); err == nil || errors.Is(err, keychain.ErrNotFound) {
		t.Fatalf("Get of a 0644 file = %v, want refusal", err)
	}
	// A loose existing directory is tightened on open.
	loose := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := keychain.NewFile(loose); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(loose); fi.Mode().Perm() != 0o700 {
		t.Fatalf("loose dir mode = %v, want 0700", fi.Mode().Perm())
	}
}

func TestSecretService(t *testing.T) {
	d := keychaintest.SecretService(t)
	var logs bytes.Buffer
	s, err := keychain.NewSecretService(d.Addr, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conformance(t, s)
	if strings.Contains(logs.String(), "in the clear") {
		t.Fatalf("gnome-keyring offers encrypted sessions but the store fell back to plain: %s", logs.String())
	}

	// libsecret, an independent client, reads what we wrote and we read what
	// it wrote: the encrypted session agrees on keys both ways.
	secretTool := testenv.Tool(t, "secret-tool")
	val := "written-by-spuff\x01"
	if err := s.Set("interop", []byte(val)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(secretTool, "lookup", "service", keychain.Service, "key", "interop")
	cmd.Env = d.Env()
	out, err := cmd.Output()
	if err != nil || string(out) != val {
		t.Fatalf("secret-tool lookup = %q, %v; want what spuff stored", out, err)
	}
	cmd = exec.Command(secretTool, "store", "--label=test", "service", keychain.Service, "key", "from-libsecret")
	cmd.Env = d.Env()
	cmd.Stdin = strings.NewReader("written-by-libsecret")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secret-tool store: %v\n%s", err, out)
	}
	if got, err := s.Get("from-libsecret"); err != nil || string(got) != "written-by-libsecret" {
		t.Fatalf("Get(from-libsecret) = %q, %v", got, err)
	}

	// The keyring is on disk: a restarted daemon still has the value, and the
	// store finds its way to the new daemon without being reopened.
	d.StopKeyring()
	if _, err := s.Get("interop"); err == nil {
		t.Fatal("Get with no daemon succeeded")
	}
	d.StartKeyring()
	if got, err := s.Get("interop"); err != nil || string(got) != val {
		t.Fatalf("after daemon restart Get = %q, %v", got, err)
	}
}

func TestOpenPicksSecretService(t *testing.T) {
	d := keychaintest.SecretService(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", d.Addr)
	s, kind, err := keychain.Open(t.TempDir(), nil)
	if err != nil || kind != keychain.KindSecretService {
		t.Fatalf("Open = %s, %v; want %s", kind, err, keychain.KindSecretService)
	}
	if err := s.Set("via-open", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFallsBackToFile(t *testing.T) {
	for name, addr := range map[string]string{
		"no bus":                "unix:path=" + filepath.Join(t.TempDir(), "nothing-here"),
		"bus without a keyring": keychaintest.Bus(t).Addr,
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
			dir := filepath.Join(t.TempDir(), "keys")
			s, kind, err := keychain.Open(dir, nil)
			if err != nil || kind != keychain.KindFile {
				t.Fatalf("Open = %s, %v; want %s", kind, err, keychain.KindFile)
			}
			if err := s.Set("fallback", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "fallback")); err != nil {
				t.Fatalf("file store did not write into %s: %v", dir, err)
			}
		})
	}
}
