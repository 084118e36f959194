package dockercreds

import "github.com/spuff-dev/spuff/app/config"

// Allowlist says which registries one shed may have credentials for.
type Allowlist struct {
	all  bool
	regs map[string]bool
}

// NewAllowlist builds the allowlist of a shed's effective docker section.
// Entries are normalized like requests, so "docker.io" in the config allows
// a client asking for "https://index.docker.io/v1/". An entry that is not a
// registry address allows nothing (config validation reports it).
func NewAllowlist(d config.Docker) *Allowlist {
	a := &Allowlist{all: d.AllowAll, regs: make(map[string]bool, len(d.Registries))}
	for _, r := range d.Registries {
		if n, err := Normalize(r); err == nil {
			a.regs[n] = true
		}
	}
	return a
}

// Allows reports whether the normalized registry is allowed.
func (a *Allowlist) Allows(registry string) bool {
	return a.all || a.regs[registry]
}
