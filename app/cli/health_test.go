package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
)

// A failing replay fence is told by status and failed by doctor, with the
// reason made printable; a healthy one is one ok line in doctor and
// nothing in status.
func TestStatusAndDoctorTellAFailingFence(t *testing.T) {
	healthy := &api.Status{Version: "v", Started: time.Now(), Audit: &api.AuditHealth{Durability: "batch"}, Fence: &api.FenceHealth{Path: "/h/.spuff/replay-fence"}}
	var out strings.Builder
	printStatus(&out, healthy)
	if strings.Contains(out.String(), "fence") {
		t.Fatalf("status with a healthy fence:\n%s", out.String())
	}
	var fs []finding
	add := func(level, what, fix string) { fs = append(fs, finding{level, what, fix}) }
	fenceCheck(healthy.Fence, add)
	if len(fs) != 1 || fs[0].level != "ok" || fs[0].what != "replay fence /h/.spuff/replay-fence" {
		t.Fatalf("doctor with a healthy fence: %+v", fs)
	}

	failing := *healthy
	failing.Fence = &api.FenceHealth{Path: "/h/.spuff/replay-fence", Error: "broker: writing the replay fence: no space left on device\x1b[2J", Since: time.Now()}
	out.Reset()
	printStatus(&out, &failing)
	if s := out.String(); !strings.Contains(s, "fence:     FAILING since") || !strings.Contains(s, "requests dated ahead of this computer's clock are refused: broker: writing the replay fence: no space left on device") || strings.ContainsRune(s, 0x1b) {
		t.Fatalf("status with a failing fence:\n%q", s)
	}
	fs = nil
	fenceCheck(failing.Fence, add)
	if len(fs) != 1 || fs[0].level != "fail" || !strings.Contains(fs[0].what, "no space left") || !strings.Contains(fs[0].fix, "/h/.spuff/replay-fence lives") || strings.ContainsRune(fs[0].what, 0x1b) {
		t.Fatalf("doctor with a failing fence: %+v", fs)
	}
	fs = nil
	fenceCheck(nil, add)
	if len(fs) != 0 {
		t.Fatalf("doctor against a broker that reports no fence: %+v", fs)
	}
}
