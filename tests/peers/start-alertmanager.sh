#!/usr/bin/env bash
# Prometheus Alertmanager (Debian's prometheus-alertmanager, 0.25 on Debian 12) on
# loopback, forwarding every notification to a webhook receiver (tests/peers/http-sink.py):
# no clustering, tiny group/repeat intervals. From the shared testbed, adapted for alertcore.
#
# Usage: start-alertmanager.sh DIR WEBHOOK_URL [PORT=9093] [--exec] [--group-by-alert]
#   --exec            replace this shell with alertmanager (for a caller that keeps the
#                     child and kills it by PID); without it, start it in the background,
#                     wait until it is ready and write DIR/alertmanager.pid
#   --group-by-alert  one group, and so one webhook notification, per alert
#                     (group_by: ['...']); the default groups by alertname
# Needs: apt-get install -y --no-install-recommends prometheus-alertmanager (and curl
# without --exec). Stop: kill "$(cat DIR/alertmanager.pid)"
set -euo pipefail
dir=$(realpath -m "${1:?dir}"); hook=${2:?webhook url}; port=9093
shift 2
if [ $# -gt 0 ] && [[ $1 != --* ]]; then port=$1; shift; fi
exec_mode=; group_by="['alertname']"
for arg in "$@"; do
  case $arg in
    --exec) exec_mode=1 ;;
    --group-by-alert) group_by="['...']" ;;
    *) echo "start-alertmanager.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
mkdir -p "$dir/data"
cat >"$dir/alertmanager.yml" <<YAML
route:
  receiver: hook
  group_by: $group_by
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: '$hook'
        send_resolved: true
        max_alerts: 0
YAML
amtool check-config "$dir/alertmanager.yml" >/dev/null
# --cluster.listen-address= disables the gossip cluster (default binds 0.0.0.0:9094 and needs
# a private IP to advertise); --web.listen-address keeps the API on loopback only.
args=(--config.file="$dir/alertmanager.yml" --storage.path="$dir/data"
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address= --log.level=warn)
if [ -n "$exec_mode" ]; then
  exec prometheus-alertmanager "${args[@]}"
fi
prometheus-alertmanager "${args[@]}" >"$dir/alertmanager.log" 2>&1 &
echo $! >"$dir/alertmanager.pid"
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null
echo "alertmanager pid $(cat "$dir/alertmanager.pid") on http://127.0.0.1:$port -> $hook"
