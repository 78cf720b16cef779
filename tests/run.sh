#!/usr/bin/env bash
# Runs every test of the workspace, after installing the real peers they talk to.
#   tests/run.sh            # from a plain clone, as root on a fresh machine
#   tests/run.sh email      # extra args go to `cargo test` (here: a name filter)
# Tests start their own servers on 127.0.0.1 (SMTP sink, a systemd sandbox); this script
# only makes sure the programs they need are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
command -v systemd-run >/dev/null || need+=(systemd)
command -v journalctl >/dev/null || need+=(systemd)
command -v unshare >/dev/null || need+=(util-linux)
command -v nsenter >/dev/null || need+=(util-linux)
command -v pgrep >/dev/null || need+=(procps)
[ -e /lib/systemd/system/dbus.service ] || need+=(dbus)
[ -e /usr/lib/systemd/user/dbus.socket ] || need+=(dbus-user-session)
command -v rsyslogd >/dev/null || need+=(rsyslog)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v /usr/lib/nagios/plugins/check_tcp >/dev/null || need+=(monitoring-plugins-basic)
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
[ -x /usr/sbin/nft ] || need+=(nftables)
command -v promtool >/dev/null || need+=(prometheus)
command -v groff >/dev/null || need+=(groff-base)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
[ -x /usr/sbin/postfix ] || need+=(postfix)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Postfix without a system instance: the sendmail test starts one of its own
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "tests/run.sh: missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
  fi
fi

# Pacemaker's sample alert agents, unpacked from Debian's pacemaker-common (no cluster)
if [ -z "${ALERTCORE_PACEMAKER_AGENTS:-}" ]; then
  ALERTCORE_PACEMAKER_AGENTS=$(tests/peers/pacemaker-agents.sh "$PWD/target/pacemaker")
  export ALERTCORE_PACEMAKER_AGENTS
fi

cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
