package guestcmd

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/spuff-dev/spuff/guest/awsendpoint"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/guest/daemon"
	"github.com/spuff-dev/spuff/guest/dockerhelper"
	"github.com/spuff-dev/spuff/guest/sshagent"
)

// frontends opens the namespaces' faces in the shed. Their listeners are
// opened here so that a bad path or a busy port fails at start.
func frontends(runDir, sshSock, awsListen, dockerConfig string, gid int, log *slog.Logger) ([]daemon.Frontend, error) {
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
	return append(out, &dockerFront{sock: daemon.GuestSockIn(runDir), config: dockerConfig, log: log}), nil
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
// so this face has nothing of its own to listen on. It keeps the user's
// docker config naming spuff for every registry the host allows.
type dockerFront struct {
	sock   string
	config string // the docker config dir; "" leaves it alone
	log    *slog.Logger
}

var _ daemon.Attacher = (*dockerFront)(nil)

// HostAttached asks the host which registries this shed may pull from
// (docker-credentials list: the host's logins its allowlist lets through)
// and writes a credHelpers entry for each, dropping the ones it no longer
// allows. The host stays the authority: the entries only say where to ask.
func (f *dockerFront) HostAttached(ctx context.Context, c daemon.Caller) {
	if f.config == "" {
		return
	}
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		var list bus.DockerListResponse
		if err = c.Call(ctx, bus.NSDocker, bus.OpList, nil, &list); err != nil {
			continue
		}
		regs := slices.Sorted(maps.Keys(list.Registries))
		if regs == nil {
			regs = []string{}
		}
		cf := dockerhelper.ConfigFile{Dir: f.config, UID: -1, GID: -1}
		if err = cf.Update(regs); err == nil {
			f.log.Info("docker config names spuff for the registries the host allows", "path", cf.Path(), "registries", len(regs))
			return
		}
		break
	}
	f.log.Warn("docker config not updated; skopeo, podman and buildah may not ask spuff", "err", err)
}

func (f *dockerFront) Namespace() string { return bus.NSDocker }
func (f *dockerFront) Where() string     { return f.sock }
func (f *dockerFront) Serve(ctx context.Context, _ daemon.Caller) error {
	<-ctx.Done()
	return nil
}
