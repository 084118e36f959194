package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/provisioning/qemu/qemutest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// BenchmarkUp is `spuff up` to ready beside its floor, measured in the
// same run one after the other: the same QEMU boot of the same image with
// a seeded, pinned host key to sshd accepting a login, with none of
// spuff's steps (qemutest.Boot, as BenchmarkBootToSSH). spuff's own steps
// are the difference: s/added and %added; the goal is ≤10% or ≤5 s. The
// phases of up (from its progress lines) show where the rest goes.
func BenchmarkUp(b *testing.B) {
	qemutest.Require(b)
	home := harness.ShortTempDir(b)
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		b.Fatal(err)
	}
	keyPath, pub := testenv.KeyPair(b, sshDir, "id_ed25519", "ed25519")
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(home, "bin", "linux-amd64")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin+"/", "./guest/cmd/spuff-guest", "./guest/cmd/docker-credential-spuff")
	build.Dir, build.Env = testenv.RepoRoot(), append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the guest: %v: %s", err, out)
	}
	// The floor's provider boots with qemu's defaults; spuff up is given
	// the same.
	h := harness.Start(b, harness.Options{
		Config: "ssh: {mode: local-keys}\nprovision: {provider: qemu, user: dev}\nqemu: {cpus: 2, memory: 2GiB}\n",
		Env:    map[string]string{"HOME": home, "SPUFF_GUEST_BIN_DIR": filepath.Join(home, "bin"), "XDG_CACHE_HOME": filepath.Dir(testenv.CacheDir())},
	})
	cli := testenv.GoBinary(b, "./app/cmd/spuff")
	spuff := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, append([]string{"--socket", h.Socket}, args...)...)
		cmd.Env = h.Env()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	floorProv := qemutest.NewProvider(b, nil)
	var floor, up []float64
	phases := map[string][]float64{}
	for i := 0; b.Loop(); i++ {
		name := "bench" + strconv.Itoa(i)
		start := time.Now()
		qemutest.Boot(b, floorProv, name, qemutest.UserData("dev", pub), "dev", signer)
		floor = append(floor, time.Since(start).Seconds())
		if err := floorProv.Delete(context.Background(), name); err != nil {
			b.Fatal(err)
		}

		start = time.Now()
		out, err := spuff(12*time.Minute, "up", name)
		up = append(up, time.Since(start).Seconds())
		if err != nil {
			b.Fatalf("spuff up: %v\n%s\n%s", err, out, h.Log())
		}
		b.Logf("spuff up %s:\n%s", name, out)
		for k, v := range upPhases(out) {
			phases[k] = append(phases[k], v)
		}
		if out, err := spuff(3*time.Minute, "down", name); err != nil {
			b.Fatalf("spuff down: %v\n%s", err, out)
		}
	}
	f, u := mean(floor), mean(up)
	b.ReportMetric(f, "s/floor-boot-to-ssh")
	b.ReportMetric(u, "s/spuff-up")
	b.ReportMetric(u-f, "s/added")
	b.ReportMetric(100*(u-f)/f, "%added")
	for k, v := range phases {
		b.ReportMetric(mean(v), "s/"+k)
	}
}

var progressLine = regexp.MustCompile(`^\[\s*([0-9.]+)s\] \S+\s+(.*)$`)

// upPhases reads spuff up's progress lines into the seconds each phase
// took: to QEMU's start, to the first login, the cloud-init wait and the
// upload (which overlap), the install, and what follows to ready.
func upPhases(out string) map[string]float64 {
	marks := map[string]float64{}
	first := func(key string, t float64) {
		if _, ok := marks[key]; !ok {
			marks[key] = t
		}
	}
	for _, l := range strings.Split(out, "\n") {
		m := progressLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		t, _ := strconv.ParseFloat(m[1], 64)
		switch step := m[2]; {
		case strings.HasPrefix(step, "starting QEMU"):
			first("qemu", t)
		case strings.HasPrefix(step, "logged in"):
			first("login", t)
		case strings.HasPrefix(step, "waiting for cloud-init"):
			first("cloudinit", t)
		case strings.HasPrefix(step, "cloud-init: status:"):
			first("cloudinit-done", t)
		case strings.HasPrefix(step, "uploading"):
			first("upload", t)
		case strings.HasSuffix(step, "SHA-256 checked in the shed"):
			marks["uploaded"] = t // the last one
		case strings.HasPrefix(step, "installing"):
			first("install", t)
		case strings.HasPrefix(step, "spuff-guest installed"):
			first("installed", t)
		case step == "ready":
			first("ready", t)
		}
	}
	span := func(from, to string) (float64, bool) {
		a, ok1 := marks[from]
		z, ok2 := marks[to]
		return z - a, ok1 && ok2
	}
	res := map[string]float64{}
	for _, p := range []struct{ name, from, to string }{
		{"up-to-qemu", "", "qemu"}, {"up-qemu-to-login", "qemu", "login"}, {"up-cloudinit-wait", "cloudinit", "cloudinit-done"},
		{"up-upload", "upload", "uploaded"}, {"up-install", "install", "installed"}, {"up-installed-to-ready", "installed", "ready"},
	} {
		if p.from == "" {
			if z, ok := marks[p.to]; ok {
				res[p.name] = z
			}
			continue
		}
		if d, ok := span(p.from, p.to); ok {
			res[p.name] = d
		}
	}
	return res
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
