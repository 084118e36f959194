#!/usr/bin/env bash
# Assembles spuff.app on a Mac (cgo for Touch ID, the keychain and the tray):
#   packaging/macos/bundle.sh [IDENTITY]   → dist/spuff.app, signed when IDENTITY is given
set -euo pipefail
cd "$(dirname "$0")/../.."
app=dist/spuff.app
rm -rf "$app" && mkdir -p "$app/Contents/MacOS"
CGO_ENABLED=1 go build -trimpath -o "$app/Contents/MacOS/" ./app/cmd/spuff-app ./app/cmd/spuff ./app/cmd/spuff-cloud
cp Info.plist "$app/Contents/Info.plist"
if [ -n "${1:-}" ]; then
  codesign --force --options runtime --entitlements packaging/macos/entitlements.plist --sign "$1" "$app"
fi
echo "built $app; start at login with: cp packaging/macos/dev.spuff.app.plist ~/Library/LaunchAgents/ && launchctl load ~/Library/LaunchAgents/dev.spuff.app.plist"
