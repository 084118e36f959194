package hetzner

import (
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"

	"github.com/spuff-dev/spuff/provisioning"
)

type hcloudServer = hcloud.Server

// FuzzMapServer feeds server JSON, as the API sends it, through hcloud's
// decoding and spuff's mapping: the state is one spuff knows, and an
// address is only ever an IPv4 with port 22.
func FuzzMapServer(f *testing.F) {
	f.Add([]byte(`{"id":1,"name":"demo","status":"running","labels":{"spuff":"demo"},"public_net":{"ipv4":{"ip":"198.51.100.2","blocked":false}},"created":"2026-12-01T10:00:00+00:00"}`))
	f.Add([]byte(`{"id":2,"status":"initializing","public_net":{"ipv4":null}}`))
	f.Add([]byte(`{"id":3,"status":"off","public_net":{"ipv4":{"ip":"2001:db8::1","blocked":true}}}`))
	states := []provisioning.State{provisioning.Pending, provisioning.Running, provisioning.Stopped, provisioning.Stopping, provisioning.Unknown}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s schema.Server
		if json.Unmarshal(b, &s) != nil {
			return
		}
		m := mapServer(hcloud.ServerFromSchema(s))
		if !slices.Contains(states, m.State) {
			t.Fatalf("state %q", m.State)
		}
		if m.SSHAddr != "" {
			host, port, err := net.SplitHostPort(m.SSHAddr)
			a, perr := netip.ParseAddr(host)
			if err != nil || port != "22" || perr != nil || !a.Is4() {
				t.Fatalf("SSHAddr %q", m.SSHAddr)
			}
		}
	})
}
