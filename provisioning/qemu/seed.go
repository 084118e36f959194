package qemu

import (
	"fmt"
	"os"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/spuff-dev/spuff/provisioning"
)

// seedLabel is the volume label cloud-init's NoCloud datasource looks for.
const seedLabel = "cidata"

// seedFiles are the NoCloud files of one shed. The Manager's user-data is
// passed as is; the shed's host key, when given, travels in vendor-data,
// which cloud-init merges under user-data, so the host can pin the key
// before first boot without rewriting what the Manager wrote. vendor-data
// is always present: a missing one costs about 11 s of retries at boot.
func seedFiles(name string, userData []byte, hk *provisioning.HostKey) map[string][]byte {
	vendor := "#cloud-config\n{}\n"
	if hk != nil {
		var b strings.Builder
		b.WriteString("#cloud-config\nssh_deletekeys: true\nssh_keys:\n  ed25519_private: |\n")
		for _, l := range strings.Split(strings.TrimRight(string(hk.PrivatePEM), "\n"), "\n") {
			b.WriteString("    " + l + "\n")
		}
		fmt.Fprintf(&b, "  ed25519_public: %s\n", strings.TrimSpace(hk.Public))
		vendor = b.String()
	}
	return map[string][]byte{
		"meta-data":   fmt.Appendf(nil, "instance-id: spuff-%s\nlocal-hostname: %s\n", name, name),
		"user-data":   userData,
		"vendor-data": []byte(vendor),
	}
}

// writeSeed writes files into a new ISO9660 image at path (Rock Ridge, so
// the names keep their dashes), 0600: it may hold the shed's host key.
func writeSeed(path string, files map[string][]byte) error {
	var size int64 = 1 << 20
	for _, b := range files {
		size += int64(len(b)) + 4096
	}
	_ = os.Remove(path)
	d, err := diskfs.Create(path, size, diskfs.SectorSize(2048))
	if err != nil {
		return fmt.Errorf("qemu: seed: %w", err)
	}
	defer d.Close()
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, VolumeLabel: seedLabel})
	if err != nil {
		return fmt.Errorf("qemu: seed: %w", err)
	}
	for name, b := range files {
		f, err := fsys.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("qemu: seed %s: %w", name, err)
		}
		if _, err := f.Write(b); err != nil {
			return fmt.Errorf("qemu: seed %s: %w", name, err)
		}
	}
	iso, ok := fsys.(*iso9660.FileSystem)
	if !ok {
		return fmt.Errorf("qemu: seed: not an ISO9660 filesystem")
	}
	if err := iso.Finalize(iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: seedLabel}); err != nil {
		return fmt.Errorf("qemu: seed: %w", err)
	}
	return os.Chmod(path, 0o600)
}
