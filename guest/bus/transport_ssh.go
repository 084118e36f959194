package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"golang.org/x/crypto/ssh"
)

// sshStream is the stdin/stdout of a remote `spuff-guest bus-stdio`.
type sshStream struct {
	io.Reader
	io.WriteCloser
	sess   *ssh.Session
	client *ssh.Client
}

func (s *sshStream) Close() error {
	s.WriteCloser.Close()
	s.sess.Close()
	return s.client.Close()
}

func dialSSH(ctx context.Context, t Target, cfg *DialConfig) (io.ReadWriteCloser, error) {
	if cfg.HostKeyCallback == nil {
		return nil, errors.New("bus: ssh transport needs a host key check")
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("bus: dialing %s: %w", t, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	cc, chans, reqs, err := ssh.NewClientConn(nc, t.Addr, &ssh.ClientConfig{
		User:            t.User,
		Auth:            cfg.SSHAuth,
		HostKeyCallback: cfg.HostKeyCallback,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: ssh handshake with %s: %w", t, err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	sess, err := client.NewSession()
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("bus: ssh session on %s: %w", t, err)
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		client.Close()
		return nil, fmt.Errorf("bus: ssh pipes on %s: %w", t, err)
	}
	cmd := cfg.Command
	if cmd == "" {
		cmd = "spuff-guest bus-stdio"
	}
	if err := sess.Start(cmd); err != nil {
		client.Close()
		return nil, fmt.Errorf("bus: starting %q on %s: %w", cmd, t, err)
	}
	_ = nc.SetDeadline(noDeadline)
	return &sshStream{Reader: stdout, WriteCloser: stdin, sess: sess, client: client}, nil
}
