package qemu

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"go.yaml.in/yaml/v3"

	"github.com/spuff-dev/spuff/provisioning"
)

func readSeed(t *testing.T, path string) (map[string]string, string) {
	t.Helper()
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadOnly), diskfs.WithSectorSize(2048))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(0)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fsys.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		f, err := fsys.OpenFile(e.Name(), os.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	// go-diskfs hands the 32-byte volume identifier back with its padding.
	return files, strings.TrimRight(fsys.Label(), "\x00 ")
}

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
	files, label := readSeed(t, path)
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
	files, _ := readSeed(t, path)
	if len(files) != 3 {
		t.Fatalf("files: %v", files)
	}
	var v map[string]any
	if err := yaml.Unmarshal([]byte(files["vendor-data"]), &v); err != nil || len(v) != 0 {
		t.Fatalf("vendor-data %q: %v %v", files["vendor-data"], v, err)
	}
}
