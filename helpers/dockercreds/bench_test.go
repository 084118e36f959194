package dockercreds_test

import (
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/helpers/dockercreds"
	"github.com/spuff-dev/spuff/helpers/dockercreds/dockertest"
	"github.com/spuff-dev/spuff/test/testenv"
)

// BenchmarkGetBesidePass runs `docker-credential-spuff get` as a process
// (through a guest socket to the service, which runs docker-credential-pass)
// beside `docker-credential-pass get` run directly, alternating, and reports
// both and their ratio. test/ has the same figure through spuff-app and the
// guest daemon.
func BenchmarkGetBesidePass(b *testing.B) {
	pass := dockertest.NewPass(b)
	const reg = "127.0.0.1:5000"
	pass.Store(b, reg, "alice", dockertest.RandomSecret())
	dir := b.TempDir()
	dockertest.WriteConfig(b, dir, map[string]any{"credsStore": "pass"})
	store := &dockercreds.Store{ConfigDir: dir, Env: pass.Env()}
	cfg := &config.Config{Docker: config.Docker{Registries: []string{reg}}}
	sock := guestSock(b, newMiniBroker(dockercreds.NewService(store, nil), cfg, "bench"))
	env := map[string]string{"SPUFF_GUEST_SOCK": sock}
	spuff := client.NewShellProgramFuncWithEnv(testenv.GoBinary(b, "./guest/cmd/docker-credential-spuff"), &env)
	direct := pass.Program()

	var tSpuff, tPass time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if c, err := client.Get(spuff, reg); err != nil || c.Username != "alice" {
			b.Fatalf("docker-credential-spuff get: %v", err)
		}
		mid := time.Now()
		if c, err := client.Get(direct, reg); err != nil || c.Username != "alice" {
			b.Fatalf("docker-credential-pass get: %v", err)
		}
		tSpuff += mid.Sub(start)
		tPass += time.Since(mid)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tSpuff.Microseconds())/n, "spuff-µs/get")
	b.ReportMetric(float64(tPass.Microseconds())/n, "pass-µs/get")
	b.ReportMetric(float64(tSpuff)/float64(tPass), "ratio")
}
