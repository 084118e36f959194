#!/usr/bin/env bash
# The debian-12 base image of a local shed, built from Debian's packages
# with mmdebstrap (root mode as root, unshare mode otherwise). Usage:
#
#   debian-12.sh OUTDIR [ARCH]      (ARCH: amd64 | arm64; default amd64)
#
# It writes OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/disk.qcow2 (an
# ext4 filesystem on the whole disk, no partition table, for direct kernel
# boot with root=/dev/vda) and, last, OUTDIR/SHA256SUMS over those three.
# The image cache keys on this file's SHA-256, so any edit here rebuilds.
#
# Tuned to boot fast under software emulation (TCG): the small cloud
# kernel, an lz4 initramfs holding only the virtio modules, a static
# address for QEMU's user network (no DHCP wait), cloud-init with the
# NoCloud datasource only, two of its four stages (and of the final one
# only the modules that run scripts), and the units a shed does not need
# at boot masked. logind and dbus stay: idle detection
# reads login sessions.
set -euo pipefail

out=${1:?usage: debian-12.sh OUTDIR [ARCH]}
arch=${2:-amd64}
suite=bookworm
mkdir -p "$out"
out=$(cd "$out" && pwd)

packages=(
	systemd-sysv udev dbus libpam-systemd
	"linux-image-cloud-$arch" initramfs-tools lz4
	openssh-server openssh-sftp-server cloud-init sudo git ca-certificates
	iproute2 netbase e2fsprogs procps
)

step() { echo "step: $*"; }

mode=root
if [[ $(id -u) -ne 0 ]]; then mode=unshare; fi

step "mmdebstrap $suite/$arch ($mode mode)"
# Every tweak runs in a customize hook, so unshare mode sees the tree with
# its real owners; the last hook makes the filesystem image from a copy of
# the tree without the special filesystems mmdebstrap mounts in it.
mmdebstrap --mode="$mode" --variant=apt --arch="$arch" \
	--include="$(IFS=,; echo "${packages[*]}")" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/i18n/*' \
	--dpkgopt='path-exclude=/usr/share/lintian/*' \
	--setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
	--setup-hook='printf "MODULES=list\nCOMPRESS=lz4\n" > "$1/etc/initramfs-tools/conf.d/spuff.conf"' \
	--setup-hook='mkdir -p "$1/usr/share/initramfs-tools/modules.d"' \
	--setup-hook='printf "virtio_pci\nvirtio_mmio\nvirtio_blk\next4\ncrc32c_generic\n" > "$1/usr/share/initramfs-tools/modules.d/spuff"' \
	--customize-hook='echo "step: configuring the image"' \
	--customize-hook='printf "/dev/vda / ext4 rw,discard,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
	--customize-hook=': > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id" "$1"/etc/ssh/ssh_host_*' \
	--customize-hook='echo shed > "$1/etc/hostname"' \
	--customize-hook='printf "nameserver 10.0.2.3\n" > "$1/etc/resolv.conf"' \
	--customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n" > "$1/etc/systemd/network/10-user-net.network"' \
	--customize-hook='printf "%s\n" \
		"# spuff: the NoCloud seed only; networking is static (user-net); the" \
		"# config stage runs inside init, so only init and final run." \
		"datasource_list: [NoCloud, None]" \
		"network: {config: disabled}" \
		"manage_etc_hosts: true" \
		"cloud_init_modules: [migrator, seed_random, bootcmd, write_files, resizefs, set_hostname, update_hostname, update_etc_hosts, ca_certs, users_groups, ssh, set_passwords, timezone, runcmd]" \
		"cloud_config_modules: []" \
		"# Of the final stage, which runs after sshd and which spuff up waits" \
		"# for, only what runs the scripts of the user-data (runcmd, provision.run)" \
		"# and says it is done; the host keys are pinned, not read off the console." \
		"cloud_final_modules: [scripts-per-once, scripts-per-boot, scripts-per-instance, scripts-user, final-message]" > "$1/etc/cloud/cloud.cfg.d/90-spuff.cfg"' \
	--customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
	--customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service cloud-config.service cloud-init-local.service' \
	--customize-hook='chroot "$1" apt-get clean; rm -rf "$1"/var/lib/apt/lists/* "$1"/var/log/*.log "$1"/var/cache/debconf/*-old' \
	--customize-hook='echo "step: extracting the kernel and initramfs"' \
	--customize-hook="cp \"\$1\"/boot/vmlinuz-* '$out/vmlinuz' && cp \"\$1\"/boot/initrd.img-* '$out/initrd.img'" \
	--customize-hook='echo "step: making the root filesystem"' \
	--customize-hook="set -e; t='$out/tree'; rm -rf \"\$t\"; cp -ax \"\$1\" \"\$t\"; mkfs.ext4 -q -F -L shedroot -d \"\$t\" '$out/root.raw' 4G; rm -rf \"\$t\"" \
	"$suite" /dev/null

step "compressing the disk"
qemu-img convert -c -f raw -O qcow2 "$out/root.raw" "$out/disk.qcow2"
rm -f "$out/root.raw"
chmod 0644 "$out/vmlinuz" "$out/initrd.img" "$out/disk.qcow2"

step "checksums"
(cd "$out" && sha256sum vmlinuz initrd.img disk.qcow2 > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
step "done"
