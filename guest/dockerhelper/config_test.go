package dockerhelper

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestConfigFileUpdate(t *testing.T) {
	c := ConfigFile{Dir: filepath.Join(t.TempDir(), ".docker"), UID: -1, GID: -1}
	if err := c.Update(nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path(), []byte(`{"detachKeys":"ctrl-x","credsStore":"desktop","credHelpers":{"gcr.io":"gcloud","old.example":"spuff"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Update([]string{"ghcr.io", "https://index.docker.io/v1/", "127.0.0.1:5000", "bad/entry"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(c.Path())
	var cfg struct {
		DetachKeys  string            `json:"detachKeys"`
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.DetachKeys != "ctrl-x" || cfg.CredsStore != "spuff" || cfg.CredHelpers["gcr.io"] != "gcloud" {
		t.Fatalf("other settings not kept:\n%s", b)
	}
	if got, _ := c.Registries(); !slices.Equal(got, []string{"127.0.0.1:5000", "docker.io", "ghcr.io"}) {
		t.Fatalf("registries %v:\n%s", got, b)
	}
	if fi, err := os.Stat(c.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi, err)
	}
	// nil keeps the entries; empty drops spuff's, never another helper's.
	if err := c.Update(nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Registries(); len(got) != 3 {
		t.Fatalf("nil dropped entries: %v", got)
	}
	if err := c.Update([]string{}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(c.Path())
	if got, _ := c.Registries(); len(got) != 0 || !json.Valid(b) {
		t.Fatalf("after an empty allowlist: %v\n%s", got, b)
	}
	if m, _ := filepath.Glob(filepath.Join(c.Dir, ".config.json-*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}
