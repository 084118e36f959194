//go:build !spuff_testprovider

package host

import (
	"testing"

	"github.com/spuff-dev/spuff/provisioning"
)

// A release build cannot make a shed that is really the host.
func TestReleaseBuildHasNoProcessProvider(t *testing.T) {
	if provisioning.Registered("process") {
		t.Fatalf("the process provider is registered in a build without spuff_testprovider: %v", provisioning.Names())
	}
	for _, want := range []string{"qemu", "digitalocean", "hetzner"} {
		if !provisioning.Registered(want) {
			t.Errorf("provider %s is missing: %v", want, provisioning.Names())
		}
	}
}
