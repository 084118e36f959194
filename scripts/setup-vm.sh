#!/usr/bin/env bash
# Installs what local sheds need (QEMU for x86, qemu-img, mmdebstrap and
# e2fsprogs for the image build) and builds the default base image once into
# ~/.cache/spuff/images. The cache folder is named by the SHA-256 of the
# recipe (provisioning/image/recipes/NAME.sh), the key provisioning/image
# uses too, so an unchanged recipe is never rebuilt. Idempotent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name=debian-12

if [[ "$(uname -s)" != Linux ]]; then
	echo "setup-vm: on $(uname -s) install QEMU yourself; spuff downloads a cloud image"
	exit 0
fi

. "$here/scripts/lib.sh"
apt_install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs
for t in qemu-system-x86_64 qemu-img mmdebstrap mkfs.ext4; do
	command -v "$t" >/dev/null || [[ -x "/usr/sbin/$t" ]] || { echo "setup-vm: $t still missing" >&2; exit 1; }
done

case "$(uname -m)" in
x86_64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) echo "setup-vm: no base image recipe for $(uname -m)" >&2; exit 1 ;;
esac
recipe="$here/provisioning/image/recipes/$name.sh"
key=$(sha256sum "$recipe" | cut -c1-16)
images="${SPUFF_CACHE:-${HOME}/.cache/spuff}/images"
dir="$images/$name-$arch-$key"
if [[ -f "$dir/SHA256SUMS" ]]; then
	exit 0
fi
mkdir -p "$images"
chmod 0700 "$images"
# One build at a time: a second run waits for the first and then finds
# the image built.
exec 9>"$images/.build.lock"
flock 9
if [[ -f "$dir/SHA256SUMS" ]]; then
	exit 0
fi
tmp=$(mktemp -d "$images/.build-$name-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "setup-vm: building the $name base image ($arch); a few minutes, once per recipe"
start=$SECONDS
if ! bash "$recipe" "$tmp" "$arch" >"$tmp.log" 2>&1; then
	tail -40 "$tmp.log" >&2
	rm -f "$tmp.log"
	echo "setup-vm: the image build failed" >&2
	exit 1
fi
rm -f "$tmp.log"
mv "$tmp" "$dir"
trap - EXIT
echo "setup-vm: $name base image built in $((SECONDS - start))s: $dir"
