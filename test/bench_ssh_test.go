package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/agent"

	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// signLoop signs n times through the agent at sock and returns each latency.
func signLoop(sock string, n int) ([]time.Duration, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ag := agent.NewClient(c)
	keys, err := ag.List()
	if err != nil || len(keys) == 0 {
		return nil, fmt.Errorf("listing keys at %s: %v (%d keys)", sock, err, len(keys))
	}
	data := make([]byte, 64)
	out := make([]time.Duration, 0, n)
	for i := range n {
		data[0] = byte(i)
		start := time.Now()
		if _, err := ag.Sign(keys[0], data); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// TestSignLoopHelper is not a test: the ssh-forwarding benchmark runs this
// binary on the far side of `ssh -A` to sign through the forwarded agent.
func TestSignLoopHelper(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SPUFF_SIGNLOOP"))
	if n == 0 {
		t.Skip("helper process for BenchmarkSign")
	}
	d, err := signLoop(os.Getenv("SSH_AUTH_SOCK"), n)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(d)
	fmt.Println("SAMPLES", string(b))
	os.Exit(0)
}

// forwardedSigns signs through OpenSSH agent forwarding: ssh -A to a local
// sshd, where this test binary signs through the forwarded socket.
func forwardedSigns(b *testing.B, ag *sshkeystest.Agent, key sshkeystest.Key, n int) []time.Duration {
	b.Helper()
	sshd := testenv.StartSSHD(b, key.Line+"\n")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	kh := harness.ShortTempDir(b) + "/known_hosts"
	if err := os.WriteFile(kh, []byte(sshd.KnownHostsLine()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(testenv.Tool(b, "ssh"), "-A", "-F", "none", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+kh,
		"-p", sshd.Port, "root@127.0.0.1",
		fmt.Sprintf("SPUFF_SIGNLOOP=%d %s -test.run '^TestSignLoopHelper$'", n, self))
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+ag.Sock)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("ssh -A sign loop: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "SAMPLES "); ok {
			var d []time.Duration
			if err := json.Unmarshal([]byte(rest), &d); err != nil {
				b.Fatal(err)
			}
			return d
		}
	}
	b.Fatalf("no samples from the forwarded side: %s", out)
	return nil
}

// BenchmarkSign: an ed25519 signature requested in a shed, through the
// broker (unix transport, audited), beside the same sign straight to the
// host's OpenSSH ssh-agent (the floor) and through OpenSSH agent
// forwarding, all in one run; then the local-keys backend through the
// broker; then 10 sheds × 10 clients at once, agent-forward and local keys.
func BenchmarkSign(b *testing.B) {
	const n = 1000
	keys := harness.ShortTempDir(b)
	key := sshkeystest.NewKey(b, keys, "bench", "ed25519")
	ag := sshkeystest.StartAgent(b, key.Path)
	limits := "limits:\n  requests_per_second: 100000\n  burst: 100000\n"
	h := harness.Start(b, harness.Options{Config: "ssh:\n  mode: agent-forward\n" + limits, Env: map[string]string{"SSH_AUTH_SOCK": ag.Sock}})
	g := h.Guest(b, "bench")

	// The local-keys broker reads the same key from its own ~/.ssh.
	home := harness.ShortTempDir(b)
	if err := os.MkdirAll(home+"/.ssh", 0o700); err != nil {
		b.Fatal(err)
	}
	priv, _ := os.ReadFile(key.Path)
	if err := os.WriteFile(home+"/.ssh/id_ed25519", priv, 0o600); err != nil {
		b.Fatal(err)
	}
	hl := harness.Start(b, harness.Options{Config: "ssh:\n  mode: local-keys\n" + limits, Env: map[string]string{"HOME": home}})
	gl := hl.Guest(b, "bench-local")

	var sheds, localSheds []*harness.Guest
	for i := range 10 {
		sheds = append(sheds, h.Guest(b, fmt.Sprintf("fleet-%d", i)))
		localSheds = append(localSheds, hl.Guest(b, fmt.Sprintf("fleet-local-%d", i)))
	}

	must := func(d []time.Duration, err error) []time.Duration {
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	b.ResetTimer()
	for range b.N {
		floor50 := testenv.ReportPercentiles(b, "direct", must(signLoop(ag.Sock, n)))
		fwd50 := testenv.ReportPercentiles(b, "ssh-A", forwardedSigns(b, ag, key, n))
		br50 := testenv.ReportPercentiles(b, "spuff", must(signLoop(g.RunDir+"/ssh-agent.sock", n)))
		testenv.ReportPercentiles(b, "spuff-localkeys", must(signLoop(gl.RunDir+"/ssh-agent.sock", n)))
		b.ReportMetric(fwd50-floor50, "ssh-A-overhead-µs")
		b.ReportMetric(br50-floor50, "spuff-overhead-µs")
		b.ReportMetric((br50-floor50)/(fwd50-floor50), "overhead-ratio")

		rate, errs := fleetSigns(sheds, 50)
		b.ReportMetric(rate, "fleet-signs/s")
		b.ReportMetric(errs, "fleet-errors")
		rate, errs = fleetSigns(localSheds, 100)
		b.ReportMetric(rate, "fleet-localkeys-signs/s")
		b.ReportMetric(errs, "fleet-localkeys-errors")
	}
}

// fleetSigns signs from 10 clients per shed at once, n signs each, and
// returns the signatures per second and the clients that failed.
func fleetSigns(sheds []*harness.Guest, n int) (perSecond, failures float64) {
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, s := range sheds {
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := signLoop(s.RunDir+"/ssh-agent.sock", n)
				if err != nil {
					failed.Add(1)
					return
				}
				ok.Add(int64(len(d)))
			}()
		}
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), float64(failed.Load())
}

// BenchmarkSignUnderFlood: a healthy shed's local-keys signs while another
// shed floods the broker with raw requests as fast as its socket takes
// them (rate limited at the default 20/s, so nearly all are refused and
// audited), beside the same signs with no flood, in one run.
func BenchmarkSignUnderFlood(b *testing.B) {
	const n = 1000
	home := harness.ShortTempDir(b)
	if err := os.MkdirAll(home+"/.ssh", 0o700); err != nil {
		b.Fatal(err)
	}
	sshkeystest.NewKey(b, home+"/.ssh", "id_ed25519", "ed25519")
	cfg := "ssh:\n  mode: local-keys\nlimits:\n  requests_per_second: 100000\n  burst: 100000\nsheds:\n  flood:\n    limits: {requests_per_second: 20, burst: 50}\n"
	h := harness.Start(b, harness.Options{Config: cfg, Env: map[string]string{"HOME": home}})
	g := h.Guest(b, "healthy")
	bad := harness.NewHostile(b)
	h.MustSpuff(b, "attach", "flood", bad.URL())
	c := bad.Conn(10 * time.Second)
	if c == nil {
		b.Fatal("the broker did not connect to the flooding shed")
	}
	must := func(d []time.Duration, err error) []time.Duration {
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	b.ResetTimer()
	for range b.N {
		quiet50 := testenv.ReportPercentiles(b, "no-flood", must(signLoop(g.RunDir+"/ssh-agent.sock", n)))
		stop := make(chan struct{})
		var sent atomic.Int64
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(int64(harness.Flood(c, 1024)))
			}
		}()
		start := time.Now()
		flood50 := testenv.ReportPercentiles(b, "under-flood", must(signLoop(g.RunDir+"/ssh-agent.sock", n)))
		close(stop)
		b.ReportMetric(float64(sent.Load())/time.Since(start).Seconds(), "flood-req/s")
		b.ReportMetric(flood50/quiet50, "flood/no-flood-p50")
	}
}
