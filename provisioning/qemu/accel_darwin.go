package qemu

// hwAccel on macOS is the Hypervisor framework.
func hwAccel() string { return "hvf" }
