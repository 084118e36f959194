//go:build spuff_testprovider

package process

import (
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
)

// A process shed is the host itself: only test builds may make one, and
// only they let provision.provider name it.
func init() {
	provisioning.Register(Name, New)
	config.Providers = append(config.Providers, Name)
}
