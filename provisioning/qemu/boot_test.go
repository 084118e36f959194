package qemu_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/spuff-dev/spuff/provisioning"
	"github.com/spuff-dev/spuff/provisioning/qemu"
	"github.com/spuff-dev/spuff/provisioning/qemu/qemutest"
)

func loginKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

// One boot covers the lifecycle: a taken port first (the retry), a login
// pinned to the seed's host key, Stop → Stopped → Start → login, a QEMU
// killed by hand reported not running, and Delete leaving nothing.
func TestShedLifecycle(t *testing.T) {
	qemutest.Require(t)
	p := qemutest.NewProvider(t, nil)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tries := 0
	qemu.SetPorts(p, func() (int, error) {
		tries++
		if tries == 1 {
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	})
	signer, pub := loginKey(t)
	vm := qemutest.Boot(t, p, "life", qemutest.UserData("dev", pub), "dev", signer)
	if tries < 2 {
		t.Fatalf("the taken port was not retried (tries=%d)", tries)
	}
	if vm.SSHAddr == taken.Addr().String() || !strings.HasPrefix(vm.SSHAddr, "127.0.0.1:") {
		t.Fatalf("SSHAddr = %s", vm.SSHAddr)
	}
	ctx := context.Background()
	run := func(cmd string) string {
		t.Helper()
		c, err := vm.Dial(ctx, "dev", signer, qemutest.SSHTimeout)
		if err != nil {
			t.Fatalf("%v\n%s", err, vm.ConsoleTail())
		}
		defer c.Close()
		out, err := qemutest.Run(c, cmd)
		if err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
		return out
	}
	if out := run("id -un; sudo -n true 2>&1 && echo sudo-ok; ip -4 addr show | grep -c 10.0.2.15"); !strings.Contains(out, "dev\nsudo-ok\n1") {
		t.Fatalf("in the shed: %q", out)
	}

	// A wrong pin is refused: the login is never trust-on-first-use.
	_, otherKey := qemutest.NewHostKey(t)
	wrong := *vm
	wrong.HostKey = otherKey
	if c, err := wrong.Dial(ctx, "dev", signer, 30*time.Second); err == nil {
		c.Close()
		t.Fatal("login succeeded with a host key other than the pinned one")
	}

	ms, err := p.List(ctx)
	if err != nil || len(ms) != 1 || ms[0].Name != "life" || ms[0].Labels[provisioning.Label] != "life" {
		t.Fatalf("List = %+v, %v", ms, err)
	}

	if err := p.Stop(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if m, err := p.Get(ctx, "life"); err != nil || m.State != provisioning.Stopped {
		t.Fatalf("after Stop: %+v, %v", m, err)
	}
	if err := p.Start(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	m, err := p.Get(ctx, "life")
	if err != nil || m.State != provisioning.Running {
		t.Fatalf("after Start: %+v, %v", m, err)
	}
	vm.SSHAddr = m.SSHAddr
	if out := run("cat /etc/hostname"); strings.TrimSpace(out) != "life" {
		t.Fatalf("hostname after restart: %q", out)
	}

	// Killed by hand: not running, disk kept.
	pidb, err := os.ReadFile(p.Dir("life") + "/qemu.pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidb)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m, err := p.Get(ctx, "life"); err != nil || m.State == provisioning.Running {
		t.Fatalf("after kill -9: %+v, %v", m, err)
	}
	if err := p.Start(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	pidb, _ = os.ReadFile(p.Dir("life") + "/qemu.pid")
	pid, _ = strconv.Atoi(strings.TrimSpace(string(pidb)))

	if err := p.Delete(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Dir("life")); !os.IsNotExist(err) {
		t.Fatalf("shed folder left behind: %v", err)
	}
	if alive(pid) {
		t.Fatalf("QEMU pid %d still running after Delete", pid)
	}
	if _, err := p.Get(ctx, "life"); err == nil {
		t.Fatal("Get after Delete found the shed")
	}
	if err := p.Delete(ctx, "life"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

// alive reports whether pid runs; a zombie (a killed QEMU its new parent
// has not reaped yet) does not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || len(st) <= i+2 || st[i+2] != 'Z'
}

// The words busyPort looks for are QEMU's own.
func TestQEMUSaysPortTaken(t *testing.T) {
	qemutest.Require(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	out, err := exec.Command("qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none",
		"-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:"+strconv.Itoa(port)+"-:22").CombinedOutput()
	if err == nil {
		t.Fatal("QEMU started with a taken hostfwd port")
	}
	if !qemu.BusyPort(out) {
		t.Fatalf("QEMU's words were not recognised: %s", out)
	}
}

// BenchmarkBootToSSH is the floor under `spuff up`: the same QEMU boot of
// the same image to sshd accepting a pinned login, with none of spuff's
// steps.
func BenchmarkBootToSSH(b *testing.B) {
	qemutest.Require(b)
	p := qemutest.NewProvider(b, nil)
	signer, pub := loginKey(b)
	for i := 0; b.Loop(); i++ {
		name := "bench" + strconv.Itoa(i)
		start := time.Now()
		qemutest.Boot(b, p, name, qemutest.UserData("dev", pub), "dev", signer)
		b.ReportMetric(time.Since(start).Seconds(), "s/boot-to-ssh")
		if err := p.Delete(context.Background(), name); err != nil {
			b.Fatal(err)
		}
	}
}
