package keychain_test

import (
	"path/filepath"
	"testing"

	"github.com/spuff-dev/spuff/app/keychain"
	"github.com/spuff-dev/spuff/app/keychain/keychaintest"
)

// BenchmarkStores measures a Set then Get of a grant-sized value in each
// store, side by side: the cost an approval pays to persist its grant.
func BenchmarkStores(b *testing.B) {
	val := make([]byte, 512)
	run := func(b *testing.B, s keychain.Store) {
		for b.Loop() {
			if err := s.Set("bench", val); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Get("bench"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, keychain.NewMemory()) })
	b.Run("file", func(b *testing.B) {
		s, err := keychain.NewFile(filepath.Join(b.TempDir(), "k"))
		if err != nil {
			b.Fatal(err)
		}
		run(b, s)
	})
	b.Run("secret-service", func(b *testing.B) {
		d := keychaintest.SecretService(b)
		s, err := keychain.NewSecretService(d.Addr, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s)
	})
}
