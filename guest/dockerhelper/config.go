package dockerhelper

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Name is the helper's name in a docker config: docker-credential-Name.
const Name = "spuff"

// dockerHubKey is the key the docker CLI and the host file Docker Hub under;
// skopeo, podman and buildah look credHelpers up by "docker.io".
const dockerHubKey = "https://index.docker.io/v1/"

// ConfigFile is the shed user's docker config.json. It names spuff as the
// credsStore (the docker CLI reads that) and, for each registry the host
// allows this shed, a credHelpers entry (skopeo, podman and buildah read
// only those). It never holds a credential: only registry names and the
// helper's name.
type ConfigFile struct {
	Dir      string // the docker config directory (DOCKER_CONFIG or ~/.docker)
	UID, GID int    // its owner; -1 keeps the writer's
}

// Path is Dir/config.json.
func (c ConfigFile) Path() string { return filepath.Join(c.Dir, "config.json") }

// Update rewrites config.json, keeping every other setting and every
// credHelpers entry of another helper: credsStore becomes spuff and the
// credHelpers entries naming spuff become exactly registries (as the
// host's docker-credentials list spells them). registries nil keeps the
// spuff entries there are.
func (c ConfigFile) Update(registries []string) error {
	p := c.Path()
	cfg := map[string]any{}
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("dockerhelper: %s is not JSON (%v); fix or move it", p, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dockerhelper: reading %s: %w", p, err)
	}
	cfg["credsStore"] = Name
	helpers, _ := cfg["credHelpers"].(map[string]any)
	if helpers == nil {
		helpers = map[string]any{}
	}
	if registries != nil {
		for k, v := range helpers {
			if v == Name {
				delete(helpers, k)
			}
		}
		for _, r := range registries {
			if r == dockerHubKey {
				r = "docker.io"
			}
			if r != "" && !strings.ContainsAny(r, "/ \t\r\n") {
				helpers[r] = Name
			}
		}
	}
	if len(helpers) > 0 {
		cfg["credHelpers"] = helpers
	} else {
		delete(cfg, "credHelpers")
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("dockerhelper: %w", err)
	}
	tmp, err := os.CreateTemp(c.Dir, ".config.json-*")
	if err != nil {
		return fmt.Errorf("dockerhelper: writing %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("dockerhelper: writing %s: %w", p, werr)
	}
	if c.UID >= 0 || c.GID >= 0 {
		for _, q := range []string{c.Dir, tmp.Name()} {
			if err := os.Lchown(q, c.UID, c.GID); err != nil && os.Geteuid() == 0 {
				return fmt.Errorf("dockerhelper: giving %s to the shed's user: %w", q, err)
			}
		}
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("dockerhelper: placing %s: %w", p, err)
	}
	return nil
}

// Registries are the registries config.json sends to spuff, sorted.
func (c ConfigFile) Registries() ([]string, error) {
	b, err := os.ReadFile(c.Path())
	if err != nil {
		return nil, err
	}
	var cfg struct {
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	var out []string
	for k, v := range cfg.CredHelpers {
		if v == Name {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}
