package buskey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/keychain"
)

func TestKeychainKeepsOneKey(t *testing.T) {
	store := keychain.NewMemory()
	home := t.TempDir()
	a, err := Load(store, keychain.KindMemory, home)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(store, keychain.KindMemory, home)
	if err != nil {
		t.Fatal(err)
	}
	if a.Public() != b.Public() || !strings.HasPrefix(a.Public(), "ssh-ed25519 ") {
		t.Fatalf("two loads: %q %q", a.Public(), b.Public())
	}
	if _, err := os.Stat(filepath.Join(home, FileName)); !os.IsNotExist(err) {
		t.Fatalf("a key file beside a keychain: %v", err)
	}
	if pem, _ := store.Get(Item); !strings.Contains(string(pem), "PRIVATE KEY") {
		t.Fatal("the keychain item holds no private key")
	}
}

func TestFileWhenNoKeychain(t *testing.T) {
	home := filepath.Join(t.TempDir(), ".spuff")
	a, err := Load(nil, keychain.KindFile, home)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, FileName)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want 0600", path, fi, err)
	}
	b, err := Load(nil, keychain.KindFile, home)
	if err != nil || a.Public() != b.Public() {
		t.Fatalf("reload: %v %q %q", err, a.Public(), b.Public())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(nil, keychain.KindFile, home); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key: %v", err)
	}
}
