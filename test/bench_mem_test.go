package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// BenchmarkMemory: spuff-app's RSS with 1, 10 and 50 attached idle sheds,
// run from the release build (`make build-host build-guest`, so exactly what
// make build makes), an idle spuff-guest's RSS, and the sizes of the release
// binaries (spuff-cloud, which spuff-app runs per cloud API call, is not
// resident). Beside the 50-shed figure, its split: file-backed (the pages of
// the executable it touched) and anonymous (Go heap, stacks, runtime).
func BenchmarkMemory(b *testing.B) {
	dir := harness.ShortTempDir(b)
	cmd := exec.Command("make", "--no-print-directory", "build-host", "build-guest", "BIN="+dir)
	cmd.Dir = testenv.RepoRoot()
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("make build: %v: %s", err, o)
	}
	release := map[string]string{}
	for name, path := range map[string]string{
		"spuff-app":         "spuff-app",
		"spuff":             "spuff",
		"spuff-cloud":       "spuff-cloud",
		"spuff-guest-amd64": "linux-amd64/spuff-guest",
		"spuff-guest-arm64": "linux-arm64/spuff-guest",
	} {
		out := filepath.Join(dir, path)
		fi, err := os.Stat(out)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/(1<<20), name+"-MB")
		release[name] = out
	}
	for range b.N {
		for _, build := range []struct{ name, app string }{{"release", release["spuff-app"]}} {
			h := harness.Start(b, harness.Options{AppBinary: build.app, GuestBinary: release["spuff-guest-"+runtime.GOARCH]})
			var guests []*harness.Guest
			for _, n := range []int{1, 10, 50} {
				for len(guests) < n {
					guests = append(guests, h.Guest(b, fmt.Sprintf("mem-%d", len(guests)), harness.GuestOptions{Args: []string{"--aws-listen", "off"}}))
				}
				time.Sleep(time.Second) // let the attaches settle (no GC is forced: an idle daemon keeps its garbage until its heap goal)
				b.ReportMetric(float64(h.RSS())/(1<<20), fmt.Sprintf("app-%s-rss-%d-sheds-MB", build.name, n))
				if n == 50 {
					anon, file := h.RSSParts()
					b.ReportMetric(float64(anon)/(1<<20), fmt.Sprintf("app-%s-anon-%d-sheds-MB", build.name, n))
					b.ReportMetric(float64(file)/(1<<20), fmt.Sprintf("app-%s-file-%d-sheds-MB", build.name, n))
				}
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
