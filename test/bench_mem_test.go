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

// BenchmarkMemory: spuff-app's RSS with 1, 10 and 50 attached idle sheds
// (the test build, not stripped), an idle spuff-guest's RSS, and the sizes
// of the release binaries (-s -w, as make build makes them).
func BenchmarkMemory(b *testing.B) {
	for range b.N {
		h := harness.Start(b, harness.Options{})
		var guests []*harness.Guest
		for _, n := range []int{1, 10, 50} {
			for len(guests) < n {
				guests = append(guests, h.Guest(b, fmt.Sprintf("mem-%d", len(guests)), harness.GuestOptions{Args: []string{"--aws-listen", "off"}}))
			}
			time.Sleep(time.Second) // let the hellos' garbage be collected
			b.ReportMetric(float64(h.RSS())/(1<<20), fmt.Sprintf("app-rss-%d-sheds-MB", n))
		}
		b.ReportMetric(float64(guests[0].RSS())/(1<<20), "idle-guest-rss-MB")
	}
	dir := harness.ShortTempDir(b)
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
	}
}
