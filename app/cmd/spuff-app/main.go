// Command spuff-app is the broker: it signs, mints and audits on this
// computer for every attached shed, with a menu-bar tray or --headless.
package main

import (
	"os"

	"github.com/spuff-dev/spuff/app/host"
)

var version = "dev"

func main() {
	os.Exit(host.Main(os.Args[1:], os.Stderr, version))
}
