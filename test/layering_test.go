package test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/test/testenv"
)

const module = "github.com/spuff-dev/spuff/"

// deps lists the packages pkgs link, by `go list -deps` (tests excluded).
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

// TestLayering keeps the house's boundaries (DESIGN §3): the CLI and the tray
// are control-API clients that link no broker, approver, keychain or helper;
// a helper links of app/ only the config; the wire links nothing of ours;
// spuff-app links no cloud SDK, and spuff-cloud no credential code.
func TestLayering(t *testing.T) {
	for _, tc := range []struct {
		pkgs   []string
		banned func(dep string) bool
		why    string
	}{
		{[]string{"./app/cmd/spuff"}, func(d string) bool {
			return hasAnyPrefix(d, module+"app/broker", module+"app/approval", module+"app/keychain", module+"helpers/", module+"provisioning/", "github.com/godbus/")
		}, "the spuff CLI talks only to the control API (control/api and the client)"},
		{[]string{"./app/tray"}, func(d string) bool {
			return hasAnyPrefix(d, module+"app/broker", module+"app/approval", module+"app/keychain", module+"helpers/", module+"provisioning/")
		}, "the tray is a control-API client like the CLI"},
		{[]string{"./app/cmd/spuff-app"}, func(d string) bool {
			return hasAnyPrefix(d, module+"provisioning/digitalocean", module+"provisioning/hetzner", "github.com/hetznercloud/", "github.com/digitalocean/godo", "github.com/prometheus/", "google.golang.org/protobuf")
		}, "spuff-app runs the cloud providers in spuff-cloud, so that it, running all day, keeps no cloud SDK resident"},
		{[]string{"./app/cmd/spuff-cloud"}, func(d string) bool {
			return hasAnyPrefix(d, module+"app/broker", module+"app/approval", module+"app/keychain", module+"app/host", module+"helpers/", module+"provisioning/qemu")
		}, "spuff-cloud makes one cloud API call and holds no credential of the developer's"},
		{[]string{"./helpers/..."}, func(d string) bool {
			return strings.HasPrefix(d, module+"app/") && d != module+"app/config"
		}, "a helper imports only helpers/helper, guest/bus and app/config"},
		{[]string{"./guest/bus"}, func(d string) bool {
			return strings.HasPrefix(d, module) && d != module+"guest/bus"
		}, "guest/bus, the wire, imports nothing else of this repository"},
	} {
		for _, d := range deps(t, tc.pkgs...) {
			if tc.banned(d) {
				t.Errorf("%v links %s: %s", tc.pkgs, d, tc.why)
			}
		}
	}
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(s, p)) {
			return true
		}
	}
	return false
}
