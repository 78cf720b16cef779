#!/usr/bin/env bash
# Pacemaker's sample alert agents (alert_file.sh.sample, alert_smtp.sh.sample, ...) from
# Debian's pacemaker-common package, unpacked into DIR without installing anything:
#
#   tests/peers/pacemaker-agents.sh DIR     # prints DIR/usr/share/pacemaker/alerts
#
# The package's own md5sums of those files go beside them, as DIR/.../alerts/md5sums
# (`md5sum -c` format, paths relative to the root), so a test can check that what it
# runs is what Debian ships.
#
# Idempotent: with the agents already in DIR it only prints the path. Needs apt-get and
# dpkg-deb, and the network to a Debian mirror; as root it runs `apt-get update` when the
# package lists do not know the package yet. Used by tests/it/exec.rs.
set -euo pipefail

dir=${1:?usage: pacemaker-agents.sh DIR}
alerts=$dir/usr/share/pacemaker/alerts
have() {
  [ -f "$alerts/alert_file.sh.sample" ] && [ -f "$alerts/alert_smtp.sh.sample" ] &&
    [ -f "$alerts/md5sums" ]
}
if have; then
  echo "$alerts"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "pacemaker-agents.sh: $tool not found (a Debian system is needed)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt's download sandbox user cannot write into a root-owned 0700 temp dir.
chmod 755 "$tmp"
download() { (cd "$tmp" && apt-get download -qq pacemaker-common) >"$tmp/log" 2>&1; }
if ! download; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    download || { cat "$tmp/log" >&2; exit 1; }
  else
    cat "$tmp/log" >&2
    echo "pacemaker-agents.sh: apt-get download failed; run 'apt-get update' as root first" >&2
    exit 1
  fi
fi

# Unpack beside DIR, then move the alerts directory into place in one step, so a
# concurrent run never sees half a directory.
dpkg-deb -x "$tmp"/pacemaker-common_*.deb "$tmp/root"
dpkg-deb -e "$tmp"/pacemaker-common_*.deb "$tmp/control"
grep ' usr/share/pacemaker/alerts/' "$tmp/control/md5sums" \
  >"$tmp/root/usr/share/pacemaker/alerts/md5sums"
mkdir -p "$(dirname "$alerts")"
# an older unpacking without md5sums is replaced
[ -d "$alerts" ] && ! have && rm -rf "$alerts"
mv -T "$tmp/root/usr/share/pacemaker/alerts" "$alerts" 2>/dev/null || have
echo "$alerts"
