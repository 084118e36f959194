#!/usr/bin/env bash
# Installs what the desktop-side tests talk to: a D-Bus session bus (the
# keychain and the tray), gnome-keyring's Secret Service, libsecret's
# secret-tool (an independent client the tests check interoperability with)
# and desktop-file-validate (checks the start-at-login entry). Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if ! on_linux; then
	echo "setup-keyring: nothing to install on $(uname -s) (the macOS keychain is built in)"
	exit 0
fi

known() { apt-cache show "$1" >/dev/null 2>&1; }

# dbus-daemon is its own package on newer Debian/Ubuntu and part of dbus on older ones.
want=(dbus gnome-keyring libsecret-tools desktop-file-utils)
if known dbus-daemon; then want+=(dbus-daemon); fi

apt_install "${want[@]}"
require setup-keyring dbus-daemon gnome-keyring-daemon secret-tool desktop-file-validate
echo "setup-keyring: dbus-daemon, gnome-keyring-daemon, secret-tool and desktop-file-validate are ready"
