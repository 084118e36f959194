#!/usr/bin/env bash
# tray-screenshot.sh OUT.png: draws spuff's menu the way a Linux desktop
# shows it, for the README. A private X server (Xvfb) runs xfce4-panel, whose
# status tray hosts spuff-app's StatusNotifierItem on a private D-Bus
# session. spuff-app is built with the test-only process provider
# (-tags spuff_testprovider), so the sheds it makes are local spuff-guest
# processes and no VM is needed: one ready, one stopped, one still coming
# up; a shed spuff did not make is attached beside them. The script clicks
# the tray icon to open the menu and saves the screen. Nothing outside a
# scratch directory is touched, and everything is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/tray.png}")
for t in Xvfb xfce4-panel xdotool import dbus-daemon ssh-keygen; do
  command -v "$t" >/dev/null || { echo "tray-screenshot: $t is missing: apt-get install xvfb xfce4-panel xdotool imagemagick dbus" >&2; exit 1; }
done
bin=$PWD/bin
guestbin=$bin/linux-$(go env GOARCH)
[[ -x $bin/spuff && -x $guestbin/spuff-guest ]] || { echo "tray-screenshot: run make build first" >&2; exit 1; }
work=$(mktemp -d /tmp/spuff-tray.XXXXXX)
go build -tags spuff_testprovider -o "$work/spuff-app" ./app/cmd/spuff-app
pids=()
made=()
cleanup() {
  # The made sheds' guests are spuff-app's children and would outlive it.
  for name in "${made[@]}"; do "$bin/spuff" down --force "$name" >/dev/null 2>&1 || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "tray-screenshot: timed out waiting for $1" >&2; exit 1; }

display=:$(( (RANDOM % 400) + 100 ))
Xvfb "$display" -screen 0 800x500x24 -nolisten tcp >"$work/xvfb.log" 2>&1 & pids+=($!)
wait_for "/tmp/.X11-unix/X${display#:}"
export DISPLAY=$display

# Before the bus: the services it starts (xfconfd) inherit this environment.
export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_DATA_HOME=$work/home/.local/share XDG_RUNTIME_DIR=$work/run
mkdir -p "$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cat > "$work/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=$work/bus</listen><auth>EXTERNAL</auth>
<standard_session_servicedirs/>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>
CONF
dbus-daemon --config-file="$work/bus.conf" --nofork >"$work/dbus.log" 2>&1 & pids+=($!)
wait_for "$work/bus"
export DBUS_SESSION_BUS_ADDRESS=unix:path=$work/bus

# One panel across the top with only a status tray, so the picture shows spuff.
cat > "$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="28"/>
      <property name="icon-size" type="uint" value="20"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-2" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>
    </property>
  </property>
</channel>
XML
xfce4-panel --disable-wm-check >"$work/panel.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.kde.StatusNotifierWatcher 2>/dev/null | grep -q true && break; sleep 0.1; done

export SPUFF_HOME=$HOME/.spuff
mkdir -p "$SPUFF_HOME" && chmod 700 "$SPUFF_HOME"
printf 'provision:\n  provider: process\n  idle_timeout: 2h\n' > "$SPUFF_HOME/config.yaml"
chmod 600 "$SPUFF_HOME/config.yaml"
# spuff-app signs for sheds with the scratch home's own key, never yours.
mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
ssh-keygen -q -t ed25519 -N '' -C spuff-screenshot -f "$HOME/.ssh/id_ed25519"
# Each process shed holds its boot this long, so the last one is caught on
# its way up; the idle clocks are read every second, not every minute, so
# the ready shed's countdown is already known.
env -u SSH_AUTH_SOCK SPUFF_GUEST_BIN_DIR="$bin" SPUFF_PROCESS_BOOT_DELAY=8s SPUFF_TEST_IDLE_EVERY=1s "$work/spuff-app" >"$work/app.log" 2>&1 & pids+=($!)
wait_for "$SPUFF_HOME/run/spuff.sock"
made=(web db api)
"$bin/spuff" up web >/dev/null
"$bin/spuff" up db >/dev/null
"$bin/spuff" stop db >/dev/null
"$bin/spuff" up api >/dev/null 2>&1 & pids+=($!)
mkdir -p "$work/laptop-ci/home"
env -u SSH_AUTH_SOCK HOME="$work/laptop-ci/home" "$guestbin/spuff-guest" serve --run-dir "$work/laptop-ci/run" --aws-listen off --docker-config off >"$work/laptop-ci.log" 2>&1 & pids+=($!)
wait_for "$work/laptop-ci/run/guest.sock"
"$bin/spuff" attach laptop-ci "unix://$work/laptop-ci/run/bus.sock" >/dev/null
for _ in $(seq 1 100); do [[ $("$bin/spuff" list | grep -c connected) -ge 2 ]] && break; sleep 0.1; done
sleep 2

# The tray icon is the rightmost thing on the panel: click it to open the menu.
xdotool mousemove 786 14 click 1
sleep 1.5
# Rest on the ready shed (the menu's third line) to open what it offers.
xdotool mousemove 640 94
sleep 1.5
mkdir -p "$(dirname "$out")"
import -window root "$out"
echo "tray-screenshot: wrote $out"
