package guestcmd

import (
	"log/slog"

	"github.com/spuff-dev/spuff/guest/daemon"
)

// frontends builds the namespaces' faces in the shed.
func frontends(runDir, sshSock, awsListen string, gid int, log *slog.Logger) ([]daemon.Frontend, error) {
	return nil, nil
}
