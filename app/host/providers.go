package host

// The cloud providers register themselves with provisioning; linking them
// here is what puts them in spuff-app (and only there: the CLI and the
// tray never link a provider).
import (
	_ "github.com/spuff-dev/spuff/provisioning/digitalocean"
	_ "github.com/spuff-dev/spuff/provisioning/hetzner"
	_ "github.com/spuff-dev/spuff/provisioning/qemu"
)
