package host

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/awssts"
	"github.com/spuff-dev/spuff/helpers/dockercreds"
	"github.com/spuff-dev/spuff/helpers/helper"
	"github.com/spuff-dev/spuff/helpers/sshkeys"
)

// services builds the namespaces' host sides. stats reports their counters
// for `spuff status`; closeAll releases what they hold.
func services(cfg *config.Config, log *slog.Logger) (map[string]helper.Service, func() map[string]any, func(), error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("host: finding the home directory: %w", err)
	}
	sshDir := filepath.Join(home, ".ssh")
	backend, err := sshkeys.NewBackend(cfg.SSH.Mode, os.Getenv("SSH_AUTH_SOCK"), sshDir, log)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, sk := range backend.Skipped() {
		log.Info("ssh key not offered to sheds", "path", sk.Path, "reason", sk.Reason)
	}
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
	stats := func() map[string]any {
		return map[string]any{
			bus.NSSSHAgent: map[string]any{"mode": backend.Mode(), "skipped": backend.Skipped()},
			bus.NSAWS:      awsSvc.Stats(),
		}
	}
	closeAll := func() {
		sshSvc.Close()
		backend.Close()
	}
	return svcs, stats, closeAll, nil
}
