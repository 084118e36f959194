package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func writeImage(t *testing.T, dir string) {
	t.Helper()
	var sums strings.Builder
	for _, f := range []string{KernelFile, InitrdFile, DiskFile} {
		b := []byte("part " + f)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(s[:]), f)
	}
	if err := os.WriteFile(filepath.Join(dir, SumsFile), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLookupVerifiesTheCachedImage(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	if _, err := c.Lookup("debian-12", "amd64"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty cache: %v", err)
	}
	dir, err := c.dir("debian-12", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeImage(t, dir)
	img, err := c.Lookup("debian-12", "amd64")
	if err != nil || img.Disk != filepath.Join(dir, DiskFile) || img.Kernel != filepath.Join(dir, KernelFile) {
		t.Fatalf("Lookup = %+v, %v", img, err)
	}

	bad := t.TempDir()
	writeImage(t, bad)
	if err := os.WriteFile(filepath.Join(bad, DiskFile), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(bad); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a tampered disk verified: %v", err)
	}
}

// setup-vm.sh names the cache folder with sha256sum of the recipe file;
// Key must agree, or make deps would build an image spuff never finds.
func TestKeyMatchesSetupScript(t *testing.T) {
	r, err := Recipe("debian-12")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sha256sum", "recipes/debian-12.sh").Output()
	if err != nil {
		t.Skipf("sha256sum: %v", err)
	}
	if got := Key(r); got != string(out[:16]) {
		t.Fatalf("Key = %s, sha256sum says %s", got, out[:16])
	}
	script, err := os.ReadFile("../../scripts/setup-vm.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), `key=$(sha256sum "$recipe" | cut -c1-16)`) || !strings.Contains(string(script), `dir="$images/$name-$arch-$key"`) {
		t.Fatal("setup-vm.sh no longer names the cache folder the way Cache.dir does")
	}
	if _, err := Recipe("no-such"); err == nil {
		t.Fatal("a recipe for no-such")
	}
}

func TestParseSums(t *testing.T) {
	m, err := ParseSums([]byte("ABCD  disk.qcow2\nef01 *vmlinuz\n\n"))
	if err != nil || m["disk.qcow2"] != "abcd" || m["vmlinuz"] != "ef01" {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"zz  file", "abcd  ../x", "abcd", "abcd  a/b"} {
		if _, err := ParseSums([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseSums(f *testing.F) {
	f.Add([]byte("abcd  disk.qcow2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseSums(b)
		if err != nil {
			return
		}
		for name, sum := range m {
			if name == "" || strings.ContainsAny(name, "/\\") || name == ".." {
				t.Fatalf("accepted name %q", name)
			}
			if _, err := hex.DecodeString(sum); err != nil {
				t.Fatalf("accepted sum %q", sum)
			}
		}
	})
}

// A build that is stopped (a down of the shed whose up builds it, or
// spuff-app quitting) leaves none of the recipe's processes running: the
// recipe's tools run as its children, and they would go on downloading
// and writing as root into a folder about to be removed.
func TestAStoppedBuildLeavesNothingRunning(t *testing.T) {
	out := t.TempDir()
	recipe := []byte(`set -e
sleep 300 &
echo $! > "$1/pid"
echo "step: started"
wait
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := runRecipe(ctx, recipe, out, "amd64", func(l string) {
		if l == "step: started" {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("a stopped build reported success")
	}
	b, rerr := os.ReadFile(filepath.Join(out, "pid"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("pid file: %q", b)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the recipe's child %d still runs after its build was stopped", pid)
	}
}

// alive says whether pid runs: it exists and is not a zombie waiting for
// a parent that does not reap.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
