#!/usr/bin/env bash
# tray-screenshot.sh OUT.png: draws spuff's menu the way a Linux desktop
# shows it, for the README. A private X server (Xvfb) runs xfce4-panel, whose
# status tray hosts spuff-app's StatusNotifierItem on a private D-Bus
# session; two sheds (spuff-guest processes) are attached; the script clicks
# the tray icon to open the menu and saves the screen. Nothing outside a
# scratch directory is touched, and everything is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/tray.png}")
for t in Xvfb xfce4-panel xdotool import dbus-daemon; do
  command -v "$t" >/dev/null || { echo "tray-screenshot: $t is missing: apt-get install xvfb xfce4-panel xdotool imagemagick dbus" >&2; exit 1; }
done
bin=$PWD/bin
guestbin=$bin/linux-$(go env GOARCH)
[[ -x $bin/spuff-app && -x $guestbin/spuff-guest ]] || { echo "tray-screenshot: run make build first" >&2; exit 1; }
work=$(mktemp -d /tmp/spuff-tray.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
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
"$bin/spuff-app" >"$work/app.log" 2>&1 & pids+=($!)
wait_for "$SPUFF_HOME/run/spuff.sock"
for name in web api; do
  mkdir -p "$work/$name/home"
  env -u SSH_AUTH_SOCK HOME="$work/$name/home" "$guestbin/spuff-guest" serve --run-dir "$work/$name/run" --aws-listen off >"$work/$name.log" 2>&1 & pids+=($!)
  wait_for "$work/$name/run/guest.sock"
  "$bin/spuff" attach "$name" "unix://$work/$name/run/bus.sock" >/dev/null
done
for _ in $(seq 1 100); do [[ $("$bin/spuff" list | grep -c connected) -ge 2 ]] && break; sleep 0.1; done
sleep 1

# The tray icon is the rightmost thing on the panel: click it to open the menu.
xdotool mousemove 786 14 click 1
sleep 1.5
mkdir -p "$(dirname "$out")"
import -window root "$out"
echo "tray-screenshot: wrote $out"
