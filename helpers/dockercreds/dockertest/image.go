package dockertest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/spuff-dev/spuff/test/testenv"
)

// OCI media types of the image WriteOCILayout makes.
const (
	MediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// WriteOCILayout writes a one-layer image tagged tag into an OCI layout in
// dir and returns its manifest digest. Its layer is random, so every image
// is new to a registry.
func WriteOCILayout(t testing.TB, dir, tag string) string {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte, media string) descriptor {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(blobs, h), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return descriptor{MediaType: media, Digest: "sha256:" + h, Size: len(b)}
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	content := []byte("spuff test image " + RandomSecret()[3:] + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	diffID := sha256.Sum256(tarBuf.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	layer := put(gz.Bytes(), mediaLayer)
	cfg := mustJSON(t, map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID[:])}},
	})
	config := put(cfg, mediaConfig)
	man := put(mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaManifest,
		"config":        config,
		"layers":        []descriptor{layer},
	}), MediaManifest)
	man.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	index := mustJSON(t, map[string]any{"schemaVersion": 2, "manifests": []descriptor{man}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return man.Digest
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Push uploads the image in the OCI layout dir to ref (127.0.0.1:PORT/repo:tag)
// with crane over plain HTTP, in an environment that holds the pushing side's
// docker config (DOCKER_CONFIG, GNUPGHOME…): crane finds the login itself
// through credsStore, the way a developer's push would.
func Push(t testing.TB, dir, ref string, env []string) {
	t.Helper()
	if out, err := Crane(t, env, "push", dir, ref); err != nil {
		t.Fatalf("crane push to %s: %v\n%s", ref, err, out)
	}
}

// Crane runs crane (with --insecure, for plain HTTP) in os.Environ()+env and
// returns its combined output.
func Crane(t testing.TB, env []string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "crane"), append([]string{"--insecure"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}
