// Command spuff drives the spuff broker from a terminal.
package main

import (
	"os"

	"github.com/spuff-dev/spuff/app/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
