#!/usr/bin/env bash
# A Postfix instance of its own in DIR that relays every mail to an SMTP server on
# 127.0.0.1:PORT, for testing sendmail mode against a real MTA:
#
#   tests/peers/start-postfix.sh start DIR PORT   # config, queue and log under DIR
#   tests/peers/start-postfix.sh stop DIR
#
# Its sendmail is Debian's /usr/sbin/sendmail with `-C DIR`. The instance listens on no
# port (mail comes in only through sendmail/postdrop) and delivers nothing locally;
# the system's own Postfix configuration, if any, is not read or changed. Needs root
# (the master daemon starts as root, and a non-default config directory is accepted
# from root without being listed in the system's main.cf) and Debian's postfix
# package, installed with "No configuration" so that no system instance runs.
set -euo pipefail

cmd=${1:?usage: start-postfix.sh start DIR PORT | stop DIR}
dir=${2:?usage: start-postfix.sh start DIR PORT | stop DIR}

if [ "$cmd" = stop ]; then
  postfix -c "$dir" stop >/dev/null 2>&1 || true
  exit 0
fi
port=${3:?usage: start-postfix.sh start DIR PORT}

[ "$(id -u)" = 0 ] || { echo "start-postfix.sh: needs root" >&2; exit 1; }
command -v postfix >/dev/null || { echo "start-postfix.sh: postfix not installed" >&2; exit 1; }

# The postfix user walks to the queue: every directory above it must be searchable.
mkdir -p "$dir/queue" "$dir/data"
chmod 755 "$dir"
chown postfix "$dir/data"

# master.cf: Debian's (its postlogd writes maillog_file), with no SMTP listener and
# nothing chrooted (the queue directory would have to hold copies of /etc files for a
# chroot).
sed -e '/^smtp[[:space:]]\+inet/d' /etc/postfix/master.cf >"$dir/master.cf"

cat >"$dir/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.alertcore.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:$port
smtp_tls_security_level = none
smtp_dns_support_level = disabled
CF
postconf -c "$dir" -F '*/*/chroot = n' >/dev/null

postfix -c "$dir" check
postfix -c "$dir" start >/dev/null 2>&1 || { cat "$dir/maillog" >&2 2>/dev/null; exit 1; }
echo "ready"
