# shellcheck shell=bash
# What the setup scripts share; each sources it:  . "$(dirname "$0")/lib.sh"

# Where built tools and stamps are cached.
cache="${SPUFF_CACHE:-${HOME}/.cache/spuff}/bin"

# The one pin of staticcheck (make check runs it; setup-go-tools.sh builds it).
staticcheck_version=v0.8.2

# on_linux: the peers come from Debian packages only on Linux.
on_linux() { [[ "$(uname -s)" == Linux ]]; }

# apt_install PKG... installs the Debian packages not installed yet, quietly.
# It waits for the dpkg lock (a fresh machine's unattended upgrades, or
# another setup script) rather than failing at once.
apt_install() {
	local p missing=() sudo=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# require SCRIPT TOOL... fails, naming SCRIPT, unless every TOOL is on PATH.
require() {
	local who=$1 t
	shift
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "$who: $t still missing" >&2; exit 1; }
	done
}

# built_version BINARY prints the module version a Go binary was built
# from, or nothing when it is missing or was not built by go install.
built_version() {
	[[ -x "$1" ]] || return 0
	go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}
