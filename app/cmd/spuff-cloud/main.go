// Command spuff-cloud runs one call of a cloud provider for spuff-app, which
// starts it per call (provisioning/child), so that spuff-app, which runs
// all day, never links the cloud SDKs. It is not run by hand.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spuff-dev/spuff/provisioning/child"
	// The providers that run here: every one in config.Providers that
	// spuff-app does not link itself.
	_ "github.com/spuff-dev/spuff/provisioning/digitalocean"
	_ "github.com/spuff-dev/spuff/provisioning/hetzner"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "%s runs one cloud provider call for spuff-app, read as JSON on stdin; it takes no arguments and is not run by hand.\n", child.Binary)
		os.Exit(2)
	}
	// spuff-app alone ends a call, by closing stdin: a signal to its whole
	// process group (Ctrl-C in its terminal, a service manager's stop) must
	// not kill a create half-way, before it removed what it made.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	os.Exit(child.Serve(os.Stdin, os.Stdout, os.Stderr))
}
