package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// BenchmarkMemory: spuff-app's RSS with 1, 10 and 50 attached idle sheds,
// run from the release build (-s -w, as make build makes it), an idle
// spuff-guest's RSS, and the sizes of the release binaries.
func BenchmarkMemory(b *testing.B) {
	dir := harness.ShortTempDir(b)
	release := map[string]string{}
	for _, bin := range []struct{ pkg, name, goarch string }{
		{"./app/cmd/spuff-app", "spuff-app", ""},
		{"./app/cmd/spuff", "spuff", ""},
		{"./guest/cmd/spuff-guest", "spuff-guest-amd64", "amd64"},
		{"./guest/cmd/spuff-guest", "spuff-guest-arm64", "arm64"},
	} {
		out := filepath.Join(dir, bin.name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, bin.pkg)
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = os.Environ()
		if bin.goarch != "" {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+bin.goarch)
		}
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("building %s: %v: %s", bin.pkg, err, o)
		}
		fi, err := os.Stat(out)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/(1<<20), bin.name+"-MB")
		release[bin.name] = out
	}
	for range b.N {
		for _, build := range []struct{ name, app string }{{"release", release["spuff-app"]}} {
			h := harness.Start(b, harness.Options{AppBinary: build.app})
			var guests []*harness.Guest
			for _, n := range []int{1, 10, 50} {
				for len(guests) < n {
					guests = append(guests, h.Guest(b, fmt.Sprintf("mem-%d", len(guests)), harness.GuestOptions{Args: []string{"--aws-listen", "off"}}))
				}
				time.Sleep(time.Second) // let the hellos' garbage be collected
				b.ReportMetric(float64(h.RSS())/(1<<20), fmt.Sprintf("app-%s-rss-%d-sheds-MB", build.name, n))
			}
			if build.app != "" {
				b.ReportMetric(float64(guests[0].RSS())/(1<<20), "idle-guest-rss-MB")
			}
			for _, g := range guests {
				g.Stop(b)
			}
			h.Stop(b)
		}
	}
}
