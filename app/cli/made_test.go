package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/provisioning/digitalocean"
	"github.com/spuff-dev/spuff/provisioning/hetzner"
)

// TestUpHelpNamesWhatUpReads: `spuff up --help` names the token
// variables the cloud providers read and the defaults it quotes, so that
// a renamed variable or a changed default cannot leave the help wrong.
func TestUpHelpNamesWhatUpReads(t *testing.T) {
	long := upCmd(&globals{}).Long
	p := config.Default().Provision
	for _, v := range append(append([]string{hetzner.TokenEnv}, digitalocean.TokenEnv...),
		"provision.provider ("+p.Provider+",", "provision.idle_timeout, "+whole(p.IdleTimeout)+";", "idle_notice ("+whole(p.IdleNotice)+")") {
		if !strings.Contains(long, v) {
			t.Errorf("spuff up --help does not say %q", v)
		}
	}
}

// whole prints a duration of whole hours or minutes as the help does: 2h, 10m.
func whole(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
