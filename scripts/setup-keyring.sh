#!/usr/bin/env bash
# Installs what the desktop-side tests talk to: a D-Bus session bus (the
# keychain and the tray), gnome-keyring's Secret Service, libsecret's
# secret-tool (an independent client the tests check interoperability with)
# and desktop-file-validate (checks the start-at-login entry). Idempotent.
set -euo pipefail

if [[ "$(uname -s)" != Linux ]]; then
	echo "setup-keyring: nothing to install on $(uname -s) (the macOS keychain is built in)"
	exit 0
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
known() { apt-cache show "$1" >/dev/null 2>&1; }

# dbus-daemon is its own package on newer Debian/Ubuntu and part of dbus on older ones.
want=(dbus gnome-keyring libsecret-tools desktop-file-utils)
if known dbus-daemon; then want+=(dbus-daemon); fi

missing=()
for p in "${want[@]}"; do
	installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

for t in dbus-daemon gnome-keyring-daemon secret-tool desktop-file-validate; do
	command -v "$t" >/dev/null || { echo "setup-keyring: $t still missing" >&2; exit 1; }
done
echo "setup-keyring: dbus-daemon, gnome-keyring-daemon, secret-tool and desktop-file-validate are ready"
