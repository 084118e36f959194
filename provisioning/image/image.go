// Package image keeps the base images local sheds boot from: named (the
// default is debian-12), built from a recipe kept in this repository,
// cached under ~/.cache/spuff/images (0700) in a folder named by the
// recipe's SHA-256, and verified against the checksums written when the
// image was made. scripts/setup-vm.sh builds the default image into the
// same folder with the same key.
package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed recipes/*.sh
var recipes embed.FS

// Parts of a built image, for direct kernel boot.
const (
	KernelFile = "vmlinuz"
	InitrdFile = "initrd.img"
	DiskFile   = "disk.qcow2"
	SumsFile   = "SHA256SUMS"
)

// Image is one base image in the cache.
type Image struct {
	Name string
	Arch string // Debian's word: amd64, arm64
	Dir  string
	// Kernel and Initrd are booted directly; Disk holds the root
	// filesystem (ext4 on the whole disk, root=/dev/vda).
	Kernel, Initrd, Disk string
	DiskFormat           string
}

// Progress reports one step or output line of a build.
type Progress func(line string)

// Cache is the image cache folder (Env.Cache/images).
type Cache struct {
	Dir string
}

var (
	verifiedMu sync.Mutex
	verified   = map[string]bool{}
)

// Recipe returns the build script of a named image.
func Recipe(name string) ([]byte, error) {
	b, err := recipes.ReadFile("recipes/" + name + ".sh")
	if err != nil {
		return nil, fmt.Errorf("image: no recipe for %q", name)
	}
	return b, nil
}

// Key is the cache key of a recipe: the first 16 hex digits of its SHA-256
// (what setup-vm.sh computes with sha256sum).
func Key(recipe []byte) string {
	s := sha256.Sum256(recipe)
	return hex.EncodeToString(s[:])[:16]
}

func (c Cache) dir(name, arch string) (string, error) {
	r, err := Recipe(name)
	if err != nil {
		return "", err
	}
	return filepath.Join(c.Dir, name+"-"+arch+"-"+Key(r)), nil
}

func imageAt(name, arch, dir string) Image {
	return Image{Name: name, Arch: arch, Dir: dir, Kernel: filepath.Join(dir, KernelFile),
		Initrd: filepath.Join(dir, InitrdFile), Disk: filepath.Join(dir, DiskFile), DiskFormat: "qcow2"}
}

// Lookup returns the cached image for the current recipe, verified, or an
// error wrapping os.ErrNotExist when it was never built.
func (c Cache) Lookup(name, arch string) (Image, error) {
	dir, err := c.dir(name, arch)
	if err != nil {
		return Image{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, SumsFile)); err != nil {
		return Image{}, fmt.Errorf("image: %s/%s is not built: %w", name, arch, os.ErrNotExist)
	}
	if err := Verify(dir); err != nil {
		return Image{}, err
	}
	return imageAt(name, arch, dir), nil
}

// Ensure returns the cached image, building it first when the cache has
// none for the current recipe.
func (c Cache) Ensure(ctx context.Context, name, arch string, progress Progress) (Image, error) {
	img, err := c.Lookup(name, arch)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return img, err
	}
	return c.Build(ctx, name, arch, progress)
}

// Build runs the recipe into a temporary folder beside the cache entry
// and renames it into place only once it finished, so a failed or
// interrupted build leaves nothing a later Lookup would take for an image.
func (c Cache) Build(ctx context.Context, name, arch string, progress Progress) (Image, error) {
	recipe, err := Recipe(name)
	if err != nil {
		return Image{}, err
	}
	dir, err := c.dir(name, arch)
	if err != nil {
		return Image{}, err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	tmp, err := os.MkdirTemp(c.Dir, ".build-"+name+"-")
	if err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := runRecipe(ctx, recipe, tmp, arch, progress); err != nil {
		return Image{}, fmt.Errorf("image: build %s/%s: %w", name, arch, err)
	}
	if err := Verify(tmp); err != nil {
		return Image{}, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, SumsFile)); serr != nil {
			return Image{}, fmt.Errorf("image: %w", err)
		}
		// Another build finished first; use it.
	}
	return c.Lookup(name, arch)
}

// runRecipe runs recipe with bash into out.
func runRecipe(ctx context.Context, recipe []byte, out, arch string, progress Progress) error {
	script := out + ".sh"
	if err := os.WriteFile(script, recipe, 0o600); err != nil {
		return err
	}
	defer os.Remove(script)
	cmd := exec.CommandContext(ctx, "bash", script, out, arch)
	// The recipe's tools (mmdebstrap, apt, qemu-img) are its children, in
	// a process group of their own: a stop asks the whole group to end, so
	// mmdebstrap unmounts and removes its tree, and none of them goes on
	// downloading and writing into a folder about to be removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = groupGrace
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	tail := lines(stdout, progress)
	err = cmd.Wait()
	endGroup(cmd.Process.Pid, groupGrace)
	if err != nil {
		return fmt.Errorf("%w; last output:\n%s", err, strings.Join(<-tail, "\n"))
	}
	return nil
}

// groupGrace is how long a stopped recipe's processes get to clean up.
const groupGrace = 10 * time.Second

// endGroup waits up to grace for process group pgid to be gone, then
// kills what is left of it.
func endGroup(pgid int, grace time.Duration) {
	for end := time.Now().Add(grace); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(-pgid, 0) == syscall.ESRCH {
			return
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// lines passes each output line to progress and keeps the last 20 for an
// error message.
func lines(r io.Reader, progress Progress) <-chan []string {
	ch := make(chan []string, 1)
	go func() {
		var last []string
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			l := s.Text()
			if progress != nil {
				progress(l)
			}
			last = append(last, l)
			if len(last) > 20 {
				last = last[1:]
			}
		}
		ch <- last
	}()
	return ch
}

// Verify checks every file SHA256SUMS in dir names against its checksum,
// once per folder per process.
func Verify(dir string) error {
	verifiedMu.Lock()
	defer verifiedMu.Unlock()
	if verified[dir] {
		return nil
	}
	sums, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	want, err := ParseSums(sums)
	if err != nil {
		return err
	}
	for _, part := range []string{KernelFile, InitrdFile, DiskFile} {
		if _, ok := want[part]; !ok {
			return fmt.Errorf("image: %s names no checksum for %s", filepath.Join(dir, SumsFile), part)
		}
	}
	for file, sum := range want {
		got, err := fileSHA256(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if got != sum {
			return fmt.Errorf("image: %s does not match its checksum (corrupt cache; delete %s to rebuild)", filepath.Join(dir, file), dir)
		}
	}
	verified[dir] = true
	return nil
}

// ParseSums reads a sha256sum/sha512sum listing ("HEX  NAME" per line).
func ParseSums(b []byte) (map[string]string, error) {
	m := map[string]string{}
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		sum, file, ok := strings.Cut(l, " ")
		file = strings.TrimPrefix(strings.TrimSpace(file), "*")
		if _, err := hex.DecodeString(sum); !ok || err != nil || file == "" || strings.ContainsAny(file, "/\\") || file == ".." {
			return nil, fmt.Errorf("image: checksum line %d is not \"HEX  NAME\"", i+1)
		}
		m[file] = strings.ToLower(sum)
	}
	return m, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("image: %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
