package test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/guest/bus"
	"github.com/spuff-dev/spuff/test/harness"
)

// A terminal obeys these: set the window title, erase the line, move up,
// switch to the alternate screen, a CSI in its one-byte C1 form, and a
// right-to-left override that reorders what follows.
const hostileText = "v9\x1b]0;pwned\x07\x1b[2K\r\x1b[1A\x1b[?1049h\u009b2J\u202etxt.exe\nforged"

// hostileShed is a shed that answers the host's hello with a guest version
// full of terminal escapes and then asks for docker credentials with an
// operation of the same kind. It speaks the bus itself, as a root user in a
// compromised shed could.
func hostileShed(t *testing.T, h *harness.Host, name string) {
	t.Helper()
	sock := filepath.Join(harness.ShortTempDir(t), "bus.sock")
	l, err := bus.Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	hello := make(chan *bus.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		var c *bus.Conn
		c = bus.NewConn(nc, bus.HandlerFunc(func(ctx context.Context, r *bus.Request) (any, error) {
			if r.Op == bus.OpHello {
				defer func() { hello <- c }()
				return bus.HelloResponse{Version: bus.Version, GuestVersion: hostileText, Namespaces: []string{bus.NSDocker}}, nil
			}
			return nil, bus.Errorf(bus.CodeBadRequest, "%s", hostileText)
		}), bus.Options{})
		t.Cleanup(func() { c.Close() })
	}()
	h.MustSpuff(t, "attach", name, "unix://"+sock)
	h.WaitState(t, name, "connected")
	var c *bus.Conn
	select {
	case c = <-hello:
	case <-time.After(10 * time.Second):
		t.Fatal("the host never said hello")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, _ := json.Marshal(bus.DockerGetRequest{ServerURL: "reg.example" + hostileText})
	_ = c.Call(ctx, bus.NSDocker, bus.OpGet, json.RawMessage(raw), nil)
	_ = c.Call(ctx, bus.NSDocker, "get\x1b]0;x\x07", json.RawMessage(raw), nil)
}

// terminalSafe fails when out holds anything a terminal would act on
// instead of print: a C0 control but newline, DEL, a C1 control, a bidi
// control.
func terminalSafe(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Fatalf("%s prints %U raw:\n%q", what, r, out)
		}
	}
}

// Everything a shed chose reaches the terminal made printable; --json keeps
// it exact.
func TestHostileShedTextIsMadePrintable(t *testing.T) {
	h := harness.Start(t, harness.Options{Config: "docker: {registries: [reg.example]}\n"})
	hostileShed(t, h, "mallory")

	out := h.MustSpuff(t, "list")
	terminalSafe(t, "spuff list", out)
	if !strings.Contains(out, `v9\x1b]0;pwned\a`) {
		t.Fatalf("spuff list does not show the guest version escaped:\n%s", out)
	}
	var sheds []struct {
		GuestVersion string `json:"guest_version"`
	}
	if err := json.Unmarshal([]byte(h.MustSpuff(t, "list", "--json")), &sheds); err != nil || len(sheds) != 1 || sheds[0].GuestVersion != hostileText {
		t.Fatalf("spuff list --json does not keep the version exact: %+v %v", sheds, err)
	}
	terminalSafe(t, "spuff status", h.MustSpuff(t, "status"))
	out, _ = h.Spuff(t, "doctor")
	terminalSafe(t, "spuff doctor", out)

	// The broker may already quote what it records; whatever it recorded is
	// printed escaped, and --json gives exactly the recorded lines.
	lines := h.MustSpuff(t, "audit", "--shed", "mallory")
	terminalSafe(t, "spuff audit", lines)
	if !strings.Contains(lines, `\x1b`) {
		t.Fatalf("spuff audit shows no hostile line escaped:\n%s", lines)
	}
	var recorded []string
	for _, r := range h.FindAudit(t, func(r audit.Record) bool { return r.Shed == "mallory" }) {
		recorded = append(recorded, r.Op+"|"+r.Detail)
	}
	var shown []string
	for _, line := range strings.Split(strings.TrimSpace(h.MustSpuff(t, "audit", "--shed", "mallory", "--json")), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("spuff audit --json printed %q: %v", line, err)
		}
		shown = append(shown, r.Op+"|"+r.Detail)
	}
	if !slices.Equal(recorded, shown) || len(shown) == 0 {
		t.Fatalf("spuff audit --json is not the recorded lines:\n%q\n%q", shown, recorded)
	}
}
