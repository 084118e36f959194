package harness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newKey(t *testing.T) ([]byte, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(blk), sp
}

func junk(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func whats(fs []Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.String())
	}
	return strings.Join(s, "; ")
}

// The scanner finds what it is told to look for, wherever it sits in the
// reads, and private keys that are not the shed's in the forms a disk
// holds them; it stays quiet about the shed's own host key.
func TestDiskScanFindsSecretsAndForeignKeys(t *testing.T) {
	defer func(c, o int) { scanChunk, scanOverlap = c, o }(scanChunk, scanOverlap)
	scanChunk, scanOverlap = 64<<10, 8<<10 // many windows in a small buffer

	shedKey, shedPub := newKey(t)
	hostKey, hostPub := newKey(t)
	secret := []byte("sk-not-for-sheds-0123456789")
	hostNeedles, err := PrivateKeySecrets("the host's key", hostKey)
	if err != nil {
		t.Fatal(err)
	}
	scan := DiskScan{Secrets: append([]Secret{{What: "the AWS secret", Value: secret}}, hostNeedles...), Allowed: []ssh.PublicKey{shedPub}}

	clean := append(junk(t, 100<<10), shedKey...)
	clean = append(clean, junk(t, 100<<10)...)
	if fs, err := scan.Bytes(clean); err != nil || len(fs) != 0 {
		t.Fatalf("a disk with only the shed's host key: %s, %v", whats(fs), err)
	}

	indented := "ssh_keys:\n  ed25519_private: |\n    " + strings.ReplaceAll(strings.TrimSpace(string(hostKey)), "\n", "\n    ") + "\n"
	escaped, _ := json.Marshal(map[string]string{"key": string(hostKey)})
	for _, tc := range []struct {
		name  string
		plant []byte
		at    int
		want  string
	}{
		{"a secret mid-buffer", secret, 90 << 10, "the AWS secret"},
		{"a secret across the first read's end", secret, 64<<10 + 8<<10 - 5, "the AWS secret"},
		{"a secret across a window's owned edge", secret, 64<<10 - 5, "the AWS secret"},
		{"a secret across a later read's end", secret, 2*64<<10 + 8<<10 - 5, "the AWS secret"},
		{"a secret at the very end", secret, -1, "the AWS secret"},
		{"the host's key file", hostKey, 30 << 10, ssh.FingerprintSHA256(hostPub)},
		{"the host's key indented in YAML", []byte(indented), 30 << 10, ssh.FingerprintSHA256(hostPub)},
		{"the host's key in JSON", escaped, 60 << 10, ssh.FingerprintSHA256(hostPub)},
		{"a cut private key block", hostKey[:120], 30 << 10, "a cut OPENSSH PRIVATE KEY block"},
		{"the host's key's raw seed", hostNeedles[len(hostNeedles)-1].Value, 10 << 10, "the host's key (raw)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), clean...)
			at := tc.at
			if at < 0 {
				at = len(b)
			}
			b = append(b[:at], append(append([]byte(nil), tc.plant...), b[at:]...)...)
			fs, err := scan.Bytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) == 0 || !strings.Contains(whats(fs), tc.want) {
				t.Fatalf("found %q, want %q", whats(fs), tc.want)
			}
			if fs[0].Offset < int64(at) || fs[0].Offset > int64(at+len(tc.plant)) {
				t.Errorf("found at %d, planted at %d", fs[0].Offset, at)
			}
			for _, f := range fs {
				if bytes.Contains([]byte(f.What), secret) {
					t.Fatal("a finding names the secret's value")
				}
			}
		})
	}

	t.Run("a sparse file's data past a hole", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "disk.raw")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		const at = 1 << 30
		if _, err := f.WriteAt(append(junk(t, 4096), secret...), at); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(4 << 30); err != nil {
			t.Fatal(err)
		}
		f.Close()
		fs, err := scan.File(p)
		if err != nil || len(fs) != 1 || fs[0].What != "the AWS secret" || fs[0].Offset != at+4096 {
			t.Fatalf("File = %s, %v", whats(fs), err)
		}
	})

	if _, err := (DiskScan{}).Bytes(clean); err == nil {
		t.Error("a scan for nothing passed")
	}
}
