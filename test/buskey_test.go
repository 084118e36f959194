package test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/spuff-dev/spuff/provisioning/cloudinit"
	"github.com/spuff-dev/spuff/test/testenv"
)

// The bus key's authorized_keys line, as cloud-init installs it, lets
// that key run nothing but `spuff-guest bus-stdio`, with no pty, under a
// real OpenSSH sshd. A login key beside it runs what it asks (so the
// check below can tell the two apart).
func TestBusKeyRunsOnlyBusStdio(t *testing.T) {
	dir := t.TempDir()
	busPriv, busPub := testenv.KeyPair(t, dir, "bus", "ed25519")
	loginPriv, loginPub := testenv.KeyPair(t, dir, "login", "ed25519")
	sshd := testenv.StartSSHD(t, cloudinit.BusLine(busPub)+"\n"+loginPub+"\n")
	ssh := testenv.Tool(t, "ssh")
	run := func(key string, args ...string) string {
		base := []string{"-F", "none", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-i", key, "-p", sshd.Port}
		out, _ := exec.Command(ssh, append(append(base, args...), "127.0.0.1", "echo pwned-$((6*7))")...).CombinedOutput()
		return string(out)
	}
	if out := run(loginPriv); !strings.Contains(out, "pwned-42") {
		t.Fatalf("the login key did not run its command: %s", out)
	}
	out := run(busPriv)
	if strings.Contains(out, "pwned-42") {
		t.Fatalf("the bus key ran a shell command: %s", out)
	}
	if !strings.Contains(out, "spuff-guest") {
		t.Fatalf("the bus key's session did not run the forced command: %s", out)
	}
	if !strings.Contains(sshd.Log(), "forced-command (key-option) '"+cloudinit.BusCommand+"'") {
		t.Fatalf("sshd did not force the bus command:\n%s", sshd.Log())
	}
	if out := run(busPriv, "-tt"); strings.Contains(out, "pwned-42") || !strings.Contains(out, "PTY allocation request failed") {
		t.Fatalf("the bus key got a pty or ran a command: %s", out)
	}
}
