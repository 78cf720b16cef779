#!/usr/bin/env bash
# Checks the package packaging/build-deb.sh made: what it installs where, its conffile,
# that the packaged binary runs and its shipped config passes `config check`, that the
# man pages render without warnings, that the completions parse in their shells, that
# the units call the packaged binary, and that the maintainer scripts parse.
#   packaging/check-deb.sh [target/debian/alertctl_*.deb]
#   INSTALL=1 packaging/check-deb.sh     # and install, remove, purge it here (root)
set -euo pipefail
cd "$(dirname "$0")/.."
DEB=${1:-$(ls -t target/debian/alertctl_*.deb | head -1)}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$W/list"
for p in /usr/bin/alertctl /etc/alertcore/alertcore.toml \
    /lib/systemd/system/alertcore.service /lib/systemd/system/alertcore-failure@.service \
    /lib/systemd/system/alertcore-success@.service /lib/systemd/system/alertcore-flush.service \
    /lib/systemd/system/alertcore-flush.timer \
    /lib/systemd/system/alertcore-.service.d/10-alertcore.conf \
    /usr/share/man/man1/alertctl.1.gz /usr/share/man/man1/alertctl-failure.1.gz \
    /usr/share/man/man1/alertctl-run.1.gz /usr/share/man/man1/alertctl-ping.1.gz \
    /usr/share/bash-completion/completions/alertctl /usr/share/zsh/vendor-completions/_alertctl \
    /usr/share/fish/vendor_completions.d/alertctl.fish \
    /usr/share/doc/alertctl/README.md /usr/share/doc/alertctl/changelog.Debian.gz \
    /usr/share/doc/alertctl/docs/configuration.md \
    /usr/share/doc/alertctl/examples/10-alertcore.conf.example; do
  grep -qx "$p" "$W/list" || fail "$p is not in the package"
done
# nothing wired to every service unless the admin asks
! grep -q '^/lib/systemd/system/service.d/' "$W/list" || fail "service.d/ is installed active"
dpkg-deb -f "$DEB" Package Version Architecture Depends Section
dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$W" ./conffiles ./postinst ./prerm ./postrm
grep -qx /etc/alertcore/alertcore.toml "$W/conffiles" || fail "the config is not a conffile"
for s in postinst prerm postrm; do sh -n "$W/$s" || fail "$s does not parse"; done
grep -q 'enable alertcore-flush.timer' "$W/postinst" || fail "postinst does not enable the flush timer"
grep -q 'rm -rf /var/lib/alertcore' "$W/postrm" || fail "postrm purge keeps the state"

R="$W/root"
dpkg-deb -x "$DEB" "$R"
"$R/usr/bin/alertctl" --version
"$R/usr/bin/alertctl" --config "$R/etc/alertcore/alertcore.toml" config check
[ "$(stat -c %a "$R/etc/alertcore/alertcore.toml")" = 600 ] || fail "the config is not 0600"
! grep -rq /usr/local/bin "$R/lib/systemd/system" || fail "a unit calls /usr/local/bin"
grep -q '^ExecStart=/usr/bin/alertctl run$' "$R/lib/systemd/system/alertcore.service" \
  || fail "alertcore.service does not run /usr/bin/alertctl"
# one page per command of --help, each rendering without a warning
for cmd in $("$R/usr/bin/alertctl" --help | awk '/^Commands:/{on=1; next} /^$/{on=0} on{print $1}' | grep -v '^help$'); do
  page="$R/usr/share/man/man1/alertctl-$cmd.1.gz"
  [ -f "$page" ] || fail "no man page for alertctl $cmd"
done
for page in "$R"/usr/share/man/man1/*.1.gz; do
  out=$(zcat "$page" | groff -man -ww -z 2>&1) || fail "$page: $out"
  [ -z "$out" ] || fail "$page: $out"
done
bash -n "$R/usr/share/bash-completion/completions/alertctl" || fail "bash completion"
if command -v zsh >/dev/null; then zsh -n "$R/usr/share/zsh/vendor-completions/_alertctl" || fail "zsh completion"; fi
if command -v fish >/dev/null; then fish -n "$R/usr/share/fish/vendor_completions.d/alertctl.fish" || fail "fish completion"; fi

# With INSTALL=1 (root, a machine to spare: CI's): install, remove and purge it for
# real, checking that remove keeps the state and the config and purge takes them.
if [ "${INSTALL:-0}" = 1 ]; then
  dpkg -s alertctl >/dev/null 2>&1 && fail "alertctl is already installed here"
  # every file outside the package database, to compare after the purge
  snapshot() {
    find /etc /usr /lib /opt /var/lib -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt \) \
      -prune -o -print 2>/dev/null | sort
  }
  # (the sandbox below needs a machine id; one made now is not the package's doing)
  [ -s /etc/machine-id ] || systemd-machine-id-setup >/dev/null
  snapshot >"$W/before"
  dpkg -i "$DEB" >/dev/null
  /usr/bin/alertctl --version
  man -w alertctl-ping >/dev/null || fail "man alertctl-ping is not found"
  # the installed units load and pass systemd-analyze verify
  systemd-analyze verify /lib/systemd/system/alertcore.service \
    /lib/systemd/system/alertcore-flush.service /lib/systemd/system/alertcore-flush.timer \
    || fail "systemd-analyze verify"
  # ... and work under a real systemd (PID 1 of its own namespaces): a unit wired with
  # the shipped OnFailure= example fails, and the installed handler, with the installed
  # config (console notifier), writes its alert to the journal
  SB=$(mktemp -d /tmp/alertcore-deb-sandbox.XXXXXX)
  SANDBOX_SH=tests/peers/systemd-sandbox.sh
  if why=$(SANDBOX="$SB" $SANDBOX_SH check); then
    SANDBOX="$SB" $SANDBOX_SH start >/dev/null
    trap 'SANDBOX="$SB" $SANDBOX_SH stop >/dev/null 2>&1 || true; rm -rf "$W" "$SB"' EXIT
    cp /lib/systemd/system/alertcore*.service /lib/systemd/system/alertcore-flush.timer "$SB/units/"
    cp -r /lib/systemd/system/alertcore-.service.d "$SB/units/"
    mkdir -p "$SB/units/pkgtest.service.d"
    cp /usr/share/doc/alertctl/examples/10-alertcore.conf.example \
      "$SB/units/pkgtest.service.d/10-alertcore.conf"
    printf '[Service]\nType=oneshot\nExecStart=/bin/sh -c "echo pkgtest broke; exit 3"\n' \
      >"$SB/units/pkgtest.service"
    SANDBOX="$SB" $SANDBOX_SH run systemctl daemon-reload
    SANDBOX="$SB" $SANDBOX_SH run systemctl cat alertcore-failure@pkgtest.service.service >/dev/null \
      || fail "the handler unit does not load under systemd"
    SANDBOX="$SB" $SANDBOX_SH run systemctl start pkgtest.service 2>/dev/null || true
    seen=
    for _ in $(seq 100); do
      if journalctl -D "$SB/journal" -u alertcore-failure@pkgtest.service.service -o cat 2>/dev/null \
        | grep -q 'FAILED: pkgtest.service'; then seen=1; break; fi
      sleep 0.1
    done
    [ -n "$seen" ] || { journalctl -D "$SB/journal" --no-pager | tail -30 >&2; fail "no alert in the journal"; }
    echo "check-deb: under systemd, the installed handler alerted: $(journalctl -D "$SB/journal" \
      -u alertcore-failure@pkgtest.service.service -o cat | grep -m1 'FAILED: pkgtest.service')"
    SANDBOX="$SB" $SANDBOX_SH stop >/dev/null
    trap 'rm -rf "$W" "$SB"' EXIT
  else
    [ "${CI:-}" != true ] || fail "the systemd sandbox cannot run: $why"
    echo "check-deb: skipping the systemd sandbox: $why"
  fi
  mkdir -p /var/lib/alertcore
  /usr/bin/alertctl --state /var/lib/alertcore/state.db failure pkg-test.service 2>/dev/null || true
  [ -f /var/lib/alertcore/state.db ] || fail "no state file to keep"
  dpkg -r alertctl >/dev/null
  [ ! -e /usr/bin/alertctl ] || fail "remove left the binary"
  [ -f /var/lib/alertcore/state.db ] || fail "remove deleted the state"
  [ -f /etc/alertcore/alertcore.toml ] || fail "remove deleted the config"
  dpkg -P alertctl >/dev/null
  [ ! -e /var/lib/alertcore ] || fail "purge left the state"
  [ ! -e /etc/alertcore ] || fail "purge left the config"
  snapshot >"$W/after"
  if ! diff "$W/before" "$W/after" >"$W/diff"; then
    cat "$W/diff" >&2
    fail "the system is not as it was before the install (files above)"
  fi
  echo "check-deb: installed, removed (state and config kept) and purged (both gone)"
fi
echo "check-deb: $DEB ok ($(wc -l <"$W/list") entries)"
