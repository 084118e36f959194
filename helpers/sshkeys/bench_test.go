package sshkeys

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/helpers/helper"
	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/testenv"
)

// BenchmarkSignEd25519 signs 64 bytes (about a userauth request's size)
// with an ed25519 key every way the host can, in one run: straight to
// OpenSSH's ssh-agent on one connection as ssh does (the floor), through
// the agent-forward backend (pooled, and dialling per sign), with the
// local-keys backend, and through the whole Service (JSON payloads,
// allowlist, sign-data parsing) on both backends.
func BenchmarkSignEd25519(b *testing.B) {
	dir := b.TempDir()
	key := sshkeystest.NewKey(b, dir, "id_ed25519", "ed25519")
	a := sshkeystest.StartAgent(b, key.Path)
	data := sshsigData("git")[:64]

	nc, err := net.Dial("unix", a.Sock)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	direct := agent.NewClient(nc)

	fwd, err := NewBackend(ModeAgentForward, a.Sock, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Close()
	dial := newForwardAgent(a.Sock)
	dial.maxIdle = 0
	local, err := NewBackend(ModeLocalKeys, "", dir, nil)
	if err != nil {
		b.Fatal(err)
	}

	signer := func(ag agent.ExtendedAgent) func() error {
		return func() error {
			sig, err := ag.SignWithFlags(key.Pub, data, 0)
			if err == nil && sig.Format != ssh.KeyAlgoED25519 {
				b.Fatalf("format %s", sig.Format)
			}
			return err
		}
	}
	bench := []struct {
		name string
		op   func() error
	}{
		{"openssh-agent-direct", signer(direct)},
		{"forward-backend-pooled", signer(fwd)},
		{"forward-backend-dial-per-sign", signer(dial)},
		{"local-keys", signer(local)},
		{"service-forward", serviceSigner(b, fwd, key.Pub, data)},
		{"service-local-keys", serviceSigner(b, local, key.Pub, data)},
	}
	for _, c := range bench {
		b.Run(c.name, func(b *testing.B) { timed(b, c.op) })
	}
}

// BenchmarkSignEd25519Parallel is the same under concurrent signers (as
// many sheds signing at once): one shared connection straight to the agent
// against the backend's pool.
func BenchmarkSignEd25519Parallel(b *testing.B) {
	dir := b.TempDir()
	key := sshkeystest.NewKey(b, dir, "id_ed25519", "ed25519")
	a := sshkeystest.StartAgent(b, key.Path)
	data := sshsigData("git")[:64]
	nc, err := net.Dial("unix", a.Sock)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	fwd, err := NewBackend(ModeAgentForward, a.Sock, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Close()
	local, err := NewBackend(ModeLocalKeys, "", dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ag   agent.ExtendedAgent
	}{{"openssh-agent-one-conn", agent.NewClient(nc)}, {"forward-backend-pooled", fwd}, {"local-keys", local}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.ag.SignWithFlags(key.Pub, data, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func serviceSigner(b *testing.B, backend agent.ExtendedAgent, pub ssh.PublicKey, data []byte) func() error {
	svc := NewService(backend, ServiceOptions{})
	cfg := (&config.Config{SSH: config.SSH{Keys: []string{ssh.FingerprintSHA256(pub)}}}).ForShed("bench")
	raw, err := json.Marshal(bus.SSHSignRequest{Key: pub.Marshal(), Data: data, AgentConn: 1})
	if err != nil {
		b.Fatal(err)
	}
	return func() error {
		r := &helper.Request{ID: "bench", Shed: "bench", NS: bus.NSSSHAgent, Op: bus.OpSign, Payload: raw, Config: &cfg}
		a, err := svc.Describe(context.Background(), r)
		if err != nil {
			return err
		}
		out, err := svc.Serve(context.Background(), r, a)
		if err != nil {
			return err
		}
		_, err = json.Marshal(out)
		return err
	}
}

// timed runs op b.N times and reports p50 and p99 beside the mean.
func timed(b *testing.B, op func() error) {
	for range 10 { // warm the pool and caches
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
	}
	b.StopTimer()
	testenv.ReportPercentiles(b, "", d)
}
