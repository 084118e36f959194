package host

import (
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/child"
	// The local VM provider runs in spuff-app: its QEMU processes and
	// seed disks are spuff-app's own.
	_ "github.com/spuff-dev/spuff/provisioning/qemu"
)

// cloudProviders are the providers config knows that spuff-app does not
// link: the cloud ones, which run in spuff-cloud, a child process per call,
// and are linked only there (its main names them). Their SDKs (hcloud-go
// brings Prometheus and protobuf) would cost spuff-app, which runs all
// day, about 5 MB of RSS. The CLI and the tray never link a provider.
var cloudProviders []string

func init() {
	for _, name := range config.Providers {
		if !provisioning.Registered(name) {
			cloudProviders = append(cloudProviders, name)
		}
	}
	child.Register(cloudProviders...)
}
