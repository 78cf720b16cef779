#!/usr/bin/env bash
# A private rsyslogd for the syslog tests: it never touches /dev/log, /etc/rsyslog.conf or
# the system's rsyslog, and everything it has lives in DIR, so runs can go side by side.
#
#   start-rsyslog.sh DIR                 # daemonize, wait until ready, print where it is
#   start-rsyslog.sh --foreground DIR    # exec rsyslogd -n: the caller's child IS rsyslogd
#
#   DIR/log.sock          unix datagram input (imuxsock)
#   127.0.0.1:$UDP_PORT   UDP input (imudp)
#   127.0.0.1:$TCP_PORT   TCP input (imtcp; octet-counted or LF-delimited frames)
#   DIR/out/all.jsonl     one JSON object per message, every field (see the template)
#   DIR/rsyslogd.pid
# Env: UDP_PORT, TCP_PORT (required: pick free ones, e.g. by binding port 0).
# Needs: rsyslog (Debian: apt-get install -y --no-install-recommends rsyslog).
# Stop: kill "$(cat DIR/rsyslogd.pid)" (or kill the foreground child).
set -euo pipefail
foreground=
if [ "${1:-}" = --foreground ]; then foreground=1; shift; fi
dir=$(realpath -m "${1:?usage: start-rsyslog.sh [--foreground] DIR}")
udp=${UDP_PORT:?set UDP_PORT}; tcp=${TCP_PORT:?set TCP_PORT}
command -v rsyslogd >/dev/null || { echo "start-rsyslog.sh: rsyslogd not found (apt-get install rsyslog)" >&2; exit 127; }
mkdir -p "$dir/out" "$dir/work"
rm -f "$dir/rsyslogd.pid" "$dir/log.sock"

# inputname tells the inputs apart: imuxsock, imudp, imtcp. The unix input parses its
# messages like the network ones (UseSpecialParser off, hostname taken from the message),
# so all three show the same fields.
cat > "$dir/rsyslog.conf" <<CONF
global(workDirectory="$dir/work" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp" MaxSessions="200")

template(name="json" type="list" option.jsonf="on") {
  property(outname="input" name="inputname" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
}

ruleset(name="out") { action(type="omfile" file="$dir/out/all.jsonl" template="json") }

input(type="imuxsock" Socket="$dir/log.sock" CreatePath="on" ruleset="out" UseSpecialParser="off" ParseHostname="on" RateLimit.Interval="0")
input(type="imudp" port="$udp" address="127.0.0.1" ruleset="out")
input(type="imtcp" port="$tcp" address="127.0.0.1" ruleset="out")
CONF

rsyslogd -N1 -f "$dir/rsyslog.conf" >"$dir/check.log" 2>&1 || { cat "$dir/check.log" >&2; exit 1; }
if [ -n "$foreground" ]; then
  exec rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid"
fi
rsyslogd -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" >>"$dir/rsyslogd.out" 2>&1
for _ in $(seq 200); do
  [ -S "$dir/log.sock" ] && (exec 3<>"/dev/tcp/127.0.0.1/$tcp") 2>/dev/null && break
  sleep 0.05
done
for _ in $(seq 100); do [ -s "$dir/rsyslogd.pid" ] && break; sleep 0.05; done
echo "rsyslogd pid $(cat "$dir/rsyslogd.pid"): unix=$dir/log.sock udp=127.0.0.1:$udp tcp=127.0.0.1:$tcp out=$dir/out/all.jsonl"
