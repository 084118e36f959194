package host

import (
	"github.com/spuff-dev/spuff/provisioning/child"
	// The local VM provider runs in spuff-app: its QEMU processes and
	// seed disks are spuff-app's own.
	_ "github.com/spuff-dev/spuff/provisioning/qemu"
)

// CloudProviders run in spuff-cloud, a child process per call, and only
// there are they linked: their SDKs (hcloud-go brings Prometheus and
// protobuf) would cost spuff-app, which runs all day, about 5 MB of RSS.
// The CLI and the tray never link a provider.
var CloudProviders = []string{"digitalocean", "hetzner"}

func init() { child.Register(CloudProviders...) }
