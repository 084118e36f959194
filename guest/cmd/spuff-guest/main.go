// Command spuff-guest is the shed side of spuff.
package main

import (
	"os"

	"github.com/spuff-dev/spuff/guest/guestcmd"
)

func main() {
	os.Exit(guestcmd.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
