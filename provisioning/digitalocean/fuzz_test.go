package digitalocean

import (
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strings"
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
	f.Add([]byte(`{"id":4,"status":"active","tags":["spuff","spuff:demo","spuff-fw:demo:a:ABC234"]}`))
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

// FuzzFirewallTag: a tag the API lists is taken for a shed's firewall tag
// only when it is exactly the tag spuff makes for that shed and owner.
func FuzzFirewallTag(f *testing.F) {
	f.Add("spuff-fw:dev:alice-laptop:ABC234", "dev", "alice-laptop")
	f.Add("spuff-fw:dev::ABC234", "dev", "")
	f.Add("spuff-fw:dev:alice:laptop:X", "dev", "alice")
	f.Fuzz(func(t *testing.T, tag, shed, owner string) {
		if !firewallTagOf(tag, shed, owner) {
			return
		}
		nonce := tag[strings.LastIndex(tag, ":")+1:]
		if nonce == "" || firewallTag(shed, owner, nonce) != tag {
			t.Fatalf("%q taken for the tag of %q, %q", tag, shed, owner)
		}
		if _, ok := Labels([]string{tag})[fwTagKey]; ok {
			t.Fatalf("%q read back as a label", tag)
		}
	})
}
