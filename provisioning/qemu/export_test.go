package qemu

// SetPorts replaces how p picks the forwarded port.
func SetPorts(p *Provider, f func() (int, error)) { p.ports = f }

// BusyPort is busyPort.
var BusyPort = busyPort
