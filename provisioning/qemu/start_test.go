package qemu

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	s := spec{Dir: "/h/sheds/box", Kernel: "/c/vmlinuz", Initrd: "/c/initrd.img", Arch: "amd64", Accel: "tcg", CPUs: 2, MemoryMiB: 2048, Port: 40022}
	a := args(s)
	line := strings.Join(a, " ")
	for _, want := range []string{
		"-accel tcg,tb-size=256", "-cpu qemu64", "-smp 2", "-m 2048", "-M q35",
		"-kernel /c/vmlinuz", "-initrd /c/initrd.img",
		"file=/h/sheds/box/overlay.qcow2,if=none,id=root,format=qcow2",
		"file=/h/sheds/box/seed.iso,if=none,id=seed,format=raw,readonly=on",
		"user,id=n0,hostfwd=tcp:127.0.0.1:40022-:22",
		"-qmp unix:/h/sheds/box/qmp.sock,server=on,wait=off",
		"-pidfile /h/sheds/box/qemu.pid", "-serial file:/h/sheds/box/console.log", "-daemonize",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("missing %q in %s", want, line)
		}
	}
	if strings.Contains(line, "restrict") {
		t.Error("restrict=on cuts the shed off from the host's services at 10.0.2.2")
	}
	kvm := args(spec{Dir: "/d", Arch: "amd64", Accel: "kvm", CPUs: 1, MemoryMiB: 512})
	if i := slices.Index(kvm, "-accel"); kvm[i+1] != "kvm" || kvm[slices.Index(kvm, "-cpu")+1] != "host" {
		t.Errorf("kvm args: %v", kvm)
	}
	arm := args(spec{Dir: "/d", Arch: "arm64", Accel: "hvf", CPUs: 1, MemoryMiB: 512})
	if !slices.Contains(arm, "virt") || !strings.Contains(strings.Join(arm, " "), "console=ttyAMA0") || binary("arm64") != "qemu-system-aarch64" {
		t.Errorf("arm64 args: %v", arm)
	}
}

func TestChooseAccel(t *testing.T) {
	for _, c := range []struct {
		configured, offered string
		hung                bool
		want                string
	}{
		{"auto", "kvm", false, "kvm"},
		{"auto", "kvm", true, "tcg"}, // a KVM start hung before: TCG
		{"auto", "", false, "tcg"},
		{"auto", "hvf", false, "hvf"},
		{"tcg", "kvm", false, "tcg"},
		{"kvm", "", true, "kvm"}, // asked for explicitly: no fallback
	} {
		if got := chooseAccel(c.configured, c.offered, c.hung); got != c.want {
			t.Errorf("chooseAccel(%q, %q, %v) = %q, want %q", c.configured, c.offered, c.hung, got, c.want)
		}
	}
}

func TestBusyPort(t *testing.T) {
	if !busyPort([]byte("qemu-system-x86_64: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:5-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:5-:22'\n")) {
		t.Error("missed QEMU's busy-port error")
	}
	if busyPort([]byte("qemu-system-x86_64: -kernel /x: No such file or directory")) {
		t.Error("took another error for a busy port")
	}
}

// The KVM probe: a console that stays empty is a hung start.
func TestConsoleSpeaks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if consoleSpeaks(context.Background(), path, 300*time.Millisecond) {
		t.Fatal("a missing console log spoke")
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if consoleSpeaks(context.Background(), path, 300*time.Millisecond) {
		t.Fatal("an empty console log spoke")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = os.WriteFile(path, []byte("Linux version"), 0o600)
	}()
	if !consoleSpeaks(context.Background(), path, time.Minute) {
		t.Fatal("a console that printed was taken for silent")
	}
}
