package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/test/testenv"
)

func TestSeedHoldsUserDataAsIsAndTheHostKeyInVendorData(t *testing.T) {
	userData := []byte("#cloud-config\nusers:\n  - name: dev\n")
	hk := &provisioning.HostKey{
		PrivatePEM: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\nBBBB\n-----END OPENSSH PRIVATE KEY-----\n"),
		Public:     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n",
	}
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := writeSeed(path, seedFiles("box", userData, hk)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed mode: %v %v", fi.Mode(), err)
	}
	files, label := testenv.ReadSeed(t, path)
	if label != "cidata" {
		t.Fatalf("label %q", label)
	}
	if files["user-data"] != string(userData) {
		t.Fatalf("user-data changed: %q", files["user-data"])
	}
	if !strings.Contains(files["meta-data"], "instance-id: spuff-box\n") || !strings.Contains(files["meta-data"], "local-hostname: box\n") {
		t.Fatalf("meta-data: %q", files["meta-data"])
	}
	vd := files["vendor-data"]
	if !strings.HasPrefix(vd, "#cloud-config\n") {
		t.Fatalf("vendor-data is not cloud-config: %q", vd)
	}
	var v struct {
		DeleteKeys bool              `yaml:"ssh_deletekeys"`
		Keys       map[string]string `yaml:"ssh_keys"`
	}
	if err := yaml.Unmarshal([]byte(vd), &v); err != nil {
		t.Fatal(err)
	}
	if !v.DeleteKeys || v.Keys["ed25519_private"] != string(hk.PrivatePEM) || v.Keys["ed25519_public"] != strings.TrimSpace(hk.Public) {
		t.Fatalf("vendor-data keys: %+v", v)
	}
}

func TestSeedWithoutHostKeyHasAnEmptyVendorData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := writeSeed(path, seedFiles("box", []byte("#cloud-config\n"), nil)); err != nil {
		t.Fatal(err)
	}
	files, _ := testenv.ReadSeed(t, path)
	if len(files) != 3 {
		t.Fatalf("files: %v", files)
	}
	var v map[string]any
	if err := yaml.Unmarshal([]byte(files["vendor-data"]), &v); err != nil || len(v) != 0 {
		t.Fatalf("vendor-data %q: %v %v", files["vendor-data"], v, err)
	}
}
