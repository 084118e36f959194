package host

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/app/control/api"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/awssts"
	"github.com/spuff-dev/spuff/helpers/dockercreds"
	"github.com/spuff-dev/spuff/helpers/helper"
	"github.com/spuff-dev/spuff/helpers/sshkeys"
	"github.com/spuff-dev/spuff/provisioning/sshconn"
)

// sshIdentity builds the host's one SSH identity, as ssh.mode says: the
// backend that signs for sheds also logs the host in to ssh:// sheds
// (sshconn.Auth), and is what provisioning bootstraps new sheds with.
func sshIdentity(cfg *config.Config, log *slog.Logger) (*sshkeys.Backend, string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, "", fmt.Errorf("host: finding the home directory: %w", err)
	}
	sshDir := filepath.Join(home, ".ssh")
	backend, err := sshkeys.NewBackend(cfg.SSH.Mode, os.Getenv("SSH_AUTH_SOCK"), sshDir, log)
	if err != nil {
		return nil, "", err
	}
	for _, sk := range backend.Skipped() {
		log.Info("ssh key not offered to sheds", "path", sk.Path, "reason", sk.Reason)
	}
	return backend, sshDir, nil
}

// services builds the namespaces' host sides over the host's SSH identity.
// stats reports their counters for `spuff status`; closeAll releases what
// they hold.
func services(backend *sshkeys.Backend, sshDir string, log *slog.Logger) (map[string]helper.Service, func() api.Helpers, func()) {
	sshSvc := sshkeys.NewService(backend, sshkeys.ServiceOptions{
		KnownHosts: sshkeys.NewKnownHosts(sshkeys.DefaultKnownHosts(sshDir)...),
		Log:        log,
	})
	awsSvc := awssts.New(awssts.Options{Log: log})
	svcs := map[string]helper.Service{
		bus.NSSSHAgent: sshSvc,
		bus.NSAWS:      awsSvc,
		bus.NSDocker:   dockercreds.NewService(&dockercreds.Store{Logger: log}, log),
	}
	stats := func() api.Helpers {
		skipped := []api.SkippedKey{}
		for _, k := range backend.Skipped() {
			skipped = append(skipped, api.SkippedKey{Path: k.Path, Reason: k.Reason})
		}
		aws := api.AWSStats(awsSvc.Stats())
		st := &api.SSHStatus{Mode: backend.Mode(), Skipped: skipped}
		if st.Mode == sshkeys.ModeAgentForward {
			st.Agent = os.Getenv("SSH_AUTH_SOCK") // what NewBackend was given
		}
		return api.Helpers{SSH: st, AWS: &aws}
	}
	return svcs, stats, func() { sshSvc.Close() }
}

var _ sshconn.Identity = (*sshkeys.Backend)(nil)
