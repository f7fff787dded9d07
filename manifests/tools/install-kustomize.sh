#!/usr/bin/env bash
# Installs kustomize (the real tool, not a re-implementation) for the manifest tests, from Debian's own archive.
# Debian 12 (bookworm, this machine's release) has no kustomize package; Debian 13 (trixie) ships kustomize 5.6.0
# as a Go binary that only needs libc6 >= 2.34 (bookworm has 2.36). So: read trixie's package list into a private
# apt state directory (the system's sources stay as they are, nothing else can be upgraded from trixie), download
# that one .deb with apt and install it with dpkg. The mirror is the one this machine's apt already uses.
set -euo pipefail
want=5.6.0
# Debian's build prints "(devel)" for `kustomize version`, so ask dpkg which version is installed.
if dpkg-query -W -f='${Version}' kustomize 2>/dev/null | grep -q "^${want}"; then exit 0; fi

mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then echo "install-kustomize: no Debian mirror found in /etc/apt" >&2; exit 1; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
echo "deb $mirror trixie main" >"$work/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache::archives=$work/archives" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" download "kustomize=${want}*" >/dev/null)
dpkg -i "$work"/kustomize_*.deb >/dev/null
echo "install-kustomize: installed kustomize $(dpkg-query -W -f='${Version}' kustomize)"
