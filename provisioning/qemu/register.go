package qemu

import "github.com/spuff-dev/spuff/provisioning"

func init() { provisioning.Register("qemu", New) }
