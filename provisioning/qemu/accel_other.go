//go:build !linux && !darwin

package qemu

func hwAccel() string { return "" }
