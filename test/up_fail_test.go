package test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/provisioning/qemu/qemutest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// TestUpFailures forces `spuff up` to fail at each stage a user can meet,
// each the natural way, on real QEMU (two TCG boots in all, in parallel):
//
//   - boot: qemu.memory beyond what the host can give makes QEMU exit at
//     once (no boot time);
//   - cloud-init: a provision.run command fails, so `cloud-init status`
//     reports error, and the command's words reach the reason;
//   - upload: the guest binaries for the shed's arch are not there.
//
// Each leaves a failed shed whose reason `spuff list` (and --json) shows
// and the audit log records; `spuff down` then leaves no QEMU process, no
// files and no row.
func TestUpFailures(t *testing.T) {
	qemutest.Require(t)
	for _, tc := range []struct {
		name, config string
		emptyBins    bool
		reason       []string // in the row's reason and the audit detail
	}{
		{name: "boot", config: "qemu: {cpus: 1, memory: 64TiB}\n",
			reason: []string{"creating the machine", "qemu-system-x86_64", "cannot set up guest memory"}},
		{name: "cloudinit", config: "qemu: {cpus: 1, memory: 1GiB}\nprovision: {provider: qemu, user: dev, run: [\"echo spuff-test: no mirror for toolchain >&2; exit 3\"]}\n",
			reason: []string{"bootstrapping", "cloud-init", "error", "spuff-test: no mirror for toolchain"}},
		{name: "upload", config: "qemu: {cpus: 1, memory: 1GiB}\n", emptyBins: true,
			reason: []string{"bootstrapping", "the guest binaries", "linux-amd64/spuff-guest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := harness.ShortTempDir(t)
			sshDir := filepath.Join(home, ".ssh")
			if err := os.MkdirAll(sshDir, 0o700); err != nil {
				t.Fatal(err)
			}
			testenv.KeyPair(t, sshDir, "id_ed25519", "ed25519")
			bins := filepath.Join(home, "bin") // empty: no linux-amd64/
			if err := os.MkdirAll(bins, 0o755); err != nil {
				t.Fatal(err)
			}
			cfg := "ssh: {mode: local-keys}\n" + tc.config
			if !strings.Contains(cfg, "provision:") {
				cfg += "provision: {provider: qemu, user: dev}\n"
			}
			env := map[string]string{"HOME": home, "XDG_CACHE_HOME": filepath.Dir(testenv.CacheDir())}
			if tc.emptyBins {
				env["SPUFF_GUEST_BIN_DIR"] = bins
			}
			h := harness.Start(t, harness.Options{Config: cfg, Env: env})
			cli := testenv.GoBinary(t, "./app/cmd/spuff")
			// run gives stdout and stderr apart; spuff both together.
			run := func(timeout time.Duration, args ...string) (string, string, error) {
				var out, errb bytes.Buffer
				err := runSpuff(h, cli, timeout, nil, &out, &errb, args...)
				return out.String(), errb.String(), err
			}
			spuff := func(timeout time.Duration, args ...string) (string, error) {
				out, errs, err := run(timeout, args...)
				return out + errs, err
			}
			t.Cleanup(func() { _, _ = spuff(3*time.Minute, "down", "--force", "bad") })
			sheds := filepath.Join(h.Home, "sheds")

			start := time.Now()
			out, err := spuff(12*time.Minute, "up", "bad")
			t.Logf("spuff up bad (%s):\n%s", time.Since(start).Round(time.Second), out)
			if err == nil {
				t.Fatal("spuff up succeeded")
			}
			for _, want := range append([]string{"spuff down bad"}, tc.reason...) {
				if !strings.Contains(out, want) {
					t.Errorf("up's output lacks %q", want)
				}
			}
			list, err := spuff(time.Minute, "list")
			if err != nil || !strings.Contains(list, "failed") || !strings.Contains(list, tc.reason[len(tc.reason)-1]) {
				t.Errorf("spuff list: %v\n%s", err, list)
			}
			js, _, err := run(time.Minute, "list", "--json")
			var entries []struct {
				Name string
				Made *struct{ State, Reason string }
			}
			if err != nil || json.Unmarshal([]byte(js), &entries) != nil || len(entries) != 1 || entries[0].Made == nil ||
				entries[0].Made.State != "failed" || !containsAll(entries[0].Made.Reason, tc.reason) {
				t.Errorf("spuff list --json: %v\n%s", err, js)
			}
			ups := h.FindAudit(t, func(r audit.Record) bool { return r.NS == "provision" && r.Op == "up" && r.Shed == "bad" })
			if len(ups) != 1 || ups[0].Result != "error" || !strings.HasPrefix(ups[0].Detail, "qemu: ") || !containsAll(ups[0].Detail, tc.reason) {
				t.Errorf("audit of the failed up: %+v", ups)
			}

			if out, err := spuff(3*time.Minute, "down", "bad"); err != nil {
				t.Fatalf("spuff down: %v\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(sheds, "bad")); !os.IsNotExist(err) {
				t.Errorf("~/.spuff/sheds/bad after down: %v", err)
			}
			if out, _ := exec.Command("pgrep", "-f", sheds).Output(); len(out) > 0 {
				t.Errorf("a QEMU process outlived down: %s", out)
			}
			if js, _, _ := run(time.Minute, "list", "--json"); strings.Contains(js, `"bad"`) {
				t.Errorf("bad still listed after down:\n%s", js)
			}
			downs := h.FindAudit(t, func(r audit.Record) bool { return r.NS == "provision" && r.Op == "down" && r.Shed == "bad" })
			if len(downs) != 1 || downs[0].Result != "ok" || downs[0].Detail != "qemu" {
				t.Errorf("audit of down: %+v", downs)
			}
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
