package cli

import (
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/app/config"
)

// Doctor warns that no registry is allowlisted only when no shed can get
// docker credentials: a registry named in one shed's section is as real
// as one in the global section, as a role is for the AWS check.
func TestDoctorDockerCheckReadsEveryShed(t *testing.T) {
	for _, c := range []struct {
		yaml string
		warn bool
	}{
		{"", true},
		{"docker: {registries: [ghcr.io]}", false},
		{"docker: {allow_all: true}", false},
		{"sheds: {web: {docker: {registries: [ghcr.io]}}}", false},
		{"sheds: {web: {docker: {allow_all: true}}}", false},
		{"sheds: {web: {docker: {registries: []}}, api: {namespaces: [ssh-agent]}}", true},
		// A shed that may not use docker at all allows nothing.
		{"sheds: {web: {namespaces: [ssh-agent], docker: {registries: [ghcr.io]}}}", true},
		// Nor does a shed whose own list empties the global one.
		{"docker: {registries: [ghcr.io]}\nsheds: {web: {docker: {registries: []}}}", false},
	} {
		cfg, err := config.Parse([]byte(c.yaml), "config.yaml")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		var warned bool
		configChecks(cfg, func(level, what, fix string) {
			if strings.Contains(what, "no docker registry") {
				warned = true
			}
		})
		if warned != c.warn {
			t.Errorf("%q: warned %v, want %v", c.yaml, warned, c.warn)
		}
	}
}
