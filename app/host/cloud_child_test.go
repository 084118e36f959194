package host

import (
	"errors"
	"testing"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/child"
	"github.com/spuff-dev/spuff/test/testenv"
)

// Every name spuff-app hands to spuff-cloud is a provider spuff-cloud has:
// built without its token, each fails for the token, not for its name.
func TestSpuffCloudHasEveryCloudProvider(t *testing.T) {
	bin := testenv.GoBinary(t, "./app/cmd/spuff-cloud")
	for _, tok := range []string{"DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN", "HCLOUD_TOKEN"} {
		t.Setenv(tok, "")
	}
	for _, name := range append(CloudProviders, "nosuchcloud") {
		_, err := child.Factory(name, func() (string, error) { return bin, nil })(provisioning.Env{Config: &config.Config{}})
		if known := errors.Is(err, provisioning.ErrNoCredentials); known != (name != "nosuchcloud") {
			t.Errorf("%s in spuff-cloud without a token: %v", name, err)
		}
	}
}
