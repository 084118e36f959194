package qemu

import "os"

// hwAccel is the hardware accelerator this host may offer, when its device
// opens for reading and writing.
func hwAccel() string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return ""
	}
	f.Close()
	return "kvm"
}
