package test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/helpers/sshkeys/sshkeystest"
	"github.com/spuff-dev/spuff/test/harness"
	"github.com/spuff-dev/spuff/test/testenv"
)

// buildGuestBins builds spuff-guest and docker-credential-spuff for
// linux/amd64 into root/linux-amd64, the layout SPUFF_GUEST_BIN_DIR=root
// is read in, so a QEMU shed gets the binaries of this tree.
func buildGuestBins(t *testing.T, root string) {
	t.Helper()
	bin := filepath.Join(root, "linux-amd64")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin+"/", "./guest/cmd/spuff-guest", "./guest/cmd/docker-credential-spuff")
	build.Dir, build.Env = testenv.RepoRoot(), append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v: %s", err, out)
	}
}

// startAgent runs ssh-agent on dir/agent.sock with the key at keyPath and
// returns its socket.
func startAgent(t *testing.T, dir, keyPath string) string {
	t.Helper()
	return sshkeystest.StartAgentAt(t, filepath.Join(dir, "agent.sock"), keyPath).Sock
}

// runSpuff runs the spuff CLI at cli against h's socket and environment,
// killed after timeout, with stdin (nil for none) and its output where
// given.
func runSpuff(h *harness.Host, cli string, timeout time.Duration, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, append([]string{"--socket", h.Socket}, args...)...)
	cmd.Env = h.Env()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd.Run()
}
