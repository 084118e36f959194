package guestcmd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/spuff-dev/spuff/guest/awsendpoint"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/daemon"
	"github.com/spuff-dev/spuff/guest/sshagent"
)

// frontends opens the namespaces' faces in the shed. Their listeners are
// opened here so that a bad path or a busy port fails at start.
func frontends(runDir, sshSock, awsListen string, gid int, log *slog.Logger) ([]daemon.Frontend, error) {
	var out []daemon.Frontend
	if sshSock != "off" {
		l, err := sshagent.Listen(sshSock, gid)
		if err != nil {
			return nil, err
		}
		out = append(out, &sshFront{l: l, path: sshSock, log: log})
	}
	if awsListen != "off" {
		tokenFile := filepath.Join(runDir, "aws-token")
		token, err := awsendpoint.KeepToken(tokenFile)
		if err != nil {
			return nil, err
		}
		// Written again even when kept: the mode and group follow this
		// start's --socket-group.
		if err := awsendpoint.WriteToken(tokenFile, token, gid); err != nil {
			return nil, err
		}
		l, err := awsendpoint.Listen(awsListen)
		if err != nil {
			return nil, err
		}
		out = append(out, &awsFront{l: l, token: token, log: log})
	}
	return append(out, &dockerFront{sock: daemon.GuestSockIn(runDir)}), nil
}

// sshFront is the shed's SSH_AUTH_SOCK.
type sshFront struct {
	l    net.Listener
	path string
	log  *slog.Logger
}

func (f *sshFront) Namespace() string { return bus.NSSSHAgent }
func (f *sshFront) Where() string     { return f.path }
func (f *sshFront) Serve(ctx context.Context, c daemon.Caller) error {
	return sshagent.Serve(ctx, f.l, c, f.log)
}

// awsFront is the container-credentials endpoint.
type awsFront struct {
	l     net.Listener
	token string
	log   *slog.Logger
}

func (f *awsFront) Namespace() string { return bus.NSAWS }
func (f *awsFront) Where() string     { return awsendpoint.URL(f.l.Addr().String()) }
func (f *awsFront) Serve(ctx context.Context, c daemon.Caller) error {
	if err := awsendpoint.Serve(ctx, f.l, awsendpoint.NewHandler(c, f.token, f.log)); err != nil {
		return fmt.Errorf("aws endpoint: %w", err)
	}
	return nil
}

// dockerFront is docker-credential-spuff's namespace. The helper runs once
// per docker command and reaches the host through the daemon's guest.sock,
// so this face has nothing of its own to listen on.
type dockerFront struct{ sock string }

func (f *dockerFront) Namespace() string { return bus.NSDocker }
func (f *dockerFront) Where() string     { return f.sock }
func (f *dockerFront) Serve(ctx context.Context, _ daemon.Caller) error {
	<-ctx.Done()
	return nil
}
