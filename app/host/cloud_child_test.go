package host

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/child"
	"github.com/spuff-dev/spuff/test/testenv"
)

// Every name spuff-app hands to spuff-cloud is a provider spuff-cloud has:
// built without its token, each fails for the token, not for its name.
func TestSpuffCloudHasEveryCloudProvider(t *testing.T) {
	if got := strings.Join(cloudProviders, ","); got != "digitalocean,hetzner" {
		t.Fatalf("spuff-app hands %q to spuff-cloud, want the two clouds", got)
	}
	bin := testenv.GoBinary(t, "./app/cmd/spuff-cloud")
	for _, tok := range []string{"DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN", "HCLOUD_TOKEN"} {
		t.Setenv(tok, "")
	}
	for _, name := range append(cloudProviders, "nosuchcloud") {
		_, err := child.Factory(name, func() (string, error) { return bin, nil })(provisioning.Env{Config: &config.Config{}})
		if known := errors.Is(err, provisioning.ErrNoCredentials); known != (name != "nosuchcloud") {
			t.Errorf("%s in spuff-cloud without a token: %v", name, err)
		}
	}
}

var tokenlessBuilds atomic.Int32

func init() {
	provisioning.Register("tokenless-test", func(provisioning.Env) (provisioning.Provider, error) {
		tokenlessBuilds.Add(1)
		return nil, fmt.Errorf("tokenless-test: set ITS_TOKEN: %w", provisioning.ErrNoCredentials)
	})
}

// A provider without its token is asked once: every `spuff list` asks
// every provider, and for a cloud one each ask is a spuff-cloud run.
func TestMissingTokenIsAskedOnce(t *testing.T) {
	md := &made{provs: map[string]provisioning.Provider{}, noCreds: map[string]error{}, provEnv: provisioning.Env{Getenv: func(string) string { return "" }}}
	for range 3 {
		if _, err := md.provider("tokenless-test"); !errors.Is(err, provisioning.ErrNoCredentials) {
			t.Fatalf("provider without a token: %v", err)
		}
	}
	if n := tokenlessBuilds.Load(); n != 1 {
		t.Fatalf("built %d times, want once", n)
	}
}
