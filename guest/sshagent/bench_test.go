package sshagent

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
	"github.com/spuff-dev/spuff/helpers/sshkeys"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/testenv"
)

// BenchmarkShedSign signs 64 bytes with ed25519 as a program in a shed
// does: agent protocol on the shed's socket, the bus over a unix socket,
// the host Service, the host's OpenSSH ssh-agent. Beside it, in the same
// run, the same sign straight to that ssh-agent (the floor), and the shed
// path with the local-keys backend. The broker's pipeline (replay, rate,
// policy, audit fsync) is not in this path; test/bench measures it whole.
func BenchmarkShedSign(b *testing.B) {
	dir := b.TempDir()
	key := sshkeystest.NewKey(b, dir, "id_ed25519", "ed25519")
	hostAgent := sshkeystest.StartAgent(b, key.Path)
	data := make([]byte, 64)

	direct := dialAgent(b, hostAgent.Sock)
	fwd, err := sshkeys.NewBackend(sshkeys.ModeAgentForward, hostAgent.Sock, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Close()
	local, err := sshkeys.NewBackend(sshkeys.ModeLocalKeys, "", dir, nil)
	if err != nil {
		b.Fatal(err)
	}

	for _, c := range []struct {
		name string
		ag   agent.ExtendedAgent
	}{
		{"openssh-agent-direct", direct},
		{"shed-via-bus-openssh-agent", shedAgent(b, fwd)},
		{"shed-via-bus-local-keys", shedAgent(b, local)},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range 10 {
				if _, err := c.ag.Sign(key.Pub, data); err != nil {
					b.Fatal(err)
				}
			}
			d := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				sig, err := c.ag.Sign(key.Pub, data)
				d = append(d, time.Since(t0))
				if err != nil || sig.Format != ssh.KeyAlgoED25519 {
					b.Fatalf("sign: %v", err)
				}
			}
			testenv.ReportPercentiles(b, "", d)
		})
	}
}

func dialAgent(b *testing.B, sock string) agent.ExtendedAgent {
	nc, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return agent.NewClient(nc)
}

// shedAgent serves a shed's agent socket whose host side is a Service over
// backend, reached by a bus on a unix socket; it returns a client of it.
func shedAgent(b *testing.B, backend agent.ExtendedAgent) agent.ExtendedAgent {
	svc := sshkeys.NewService(backend, sshkeys.ServiceOptions{})
	cfg := (&config.Config{}).ForShed("bench")
	h := bus.HandlerFunc(func(ctx context.Context, req *bus.Request) (any, error) {
		r := &helper.Request{ID: req.ID, Shed: "bench", NS: req.NS, Op: req.Op, Payload: req.Payload, Config: &cfg}
		a, err := svc.Describe(ctx, r)
		if err != nil {
			return nil, err
		}
		return svc.Serve(ctx, r, a)
	})
	dir := sshkeystest.ShortDir(b)
	bl, err := net.Listen("unix", filepath.Join(dir, "bus.sock"))
	if err != nil {
		b.Fatal(err)
	}
	defer bl.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := bl.Accept()
		accepted <- c
	}()
	gc, err := net.Dial("unix", filepath.Join(dir, "bus.sock"))
	if err != nil {
		b.Fatal(err)
	}
	host := bus.NewConn(<-accepted, h, bus.Options{})
	guest := bus.NewConn(gc, nil, bus.Options{})
	l, err := Listen(filepath.Join(dir, "ssh-agent.sock"), -1)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = Serve(ctx, l, guest, nil); close(done) }()
	b.Cleanup(func() {
		cancel()
		<-done
		guest.Close()
		host.Close()
	})
	return dialAgent(b, filepath.Join(dir, "ssh-agent.sock"))
}
