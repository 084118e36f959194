package digitalocean

import (
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/digitalocean/godo"

	"github.com/spuff-dev/spuff/provisioning"
)

// FuzzMapDroplet feeds droplet JSON, as the API sends it, through godo's
// decoding and spuff's mapping: the state is always one spuff knows, an
// address is only ever a real IPv4 with port 22, and labels round-trip
// through tags.
func FuzzMapDroplet(f *testing.F) {
	f.Add([]byte(`{"id":1,"name":"demo","status":"active","tags":["spuff","spuff:demo","spuff-owner:a"],"networks":{"v4":[{"ip_address":"10.0.0.2","type":"private"},{"ip_address":"203.0.113.9","type":"public"}]},"created_at":"2026-12-01T10:00:00Z"}`))
	f.Add([]byte(`{"id":2,"status":"new","networks":{"v4":[]}}`))
	f.Add([]byte(`{"id":3,"status":"archive","tags":["a:b:c",":x","spuff:"],"networks":{"v4":[{"ip_address":"::1","type":"public"}]}}`))
	f.Add([]byte(`{"status":"off","networks":null}`))
	states := []provisioning.State{provisioning.Pending, provisioning.Running, provisioning.Stopped, provisioning.Failed, provisioning.Unknown}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d godo.Droplet
		if json.Unmarshal(b, &d) != nil {
			return
		}
		m := mapDroplet(d)
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
		if tags, err := Tags(m.Labels); err == nil {
			if back := Labels(tags); len(back) != len(m.Labels) {
				t.Fatalf("labels %v → tags %v → %v", m.Labels, tags, back)
			}
		}
	})
}
