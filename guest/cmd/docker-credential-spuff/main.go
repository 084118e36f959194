// Command docker-credential-spuff is the docker credential helper of a shed
// (`credsStore: spuff`): get and list ask the host through the guest daemon;
// store and erase are refused.
package main

import (
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/spuff-dev/spuff/guest/dockerhelper"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	credentials.Name = "docker-credential-spuff"
	credentials.Package = "github.com/spuff-dev/spuff"
	credentials.Version = version
	credentials.Serve(dockerhelper.New())
}
