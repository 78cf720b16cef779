# Sourced by bench/outbox.sh and bench/burst.sh: starts bench/http-counter.py on two free
# loopback ports. start_receiver WORKDIR DELAY_MS sets $port (data), $ctl (statistics)
# and $recv_pid; the caller kills $recv_pid on exit. Needs $PY and die().
start_receiver() {
  local work=$1 delay=$2
  read -r port ctl <<<"$("$PY" -c 'import socket
ps = [socket.socket() for _ in range(2)]
for s in ps: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ps])')"
  "$PY" bench/http-counter.py --port "$port" --control-port "$ctl" --delay-ms "$delay" \
    --ready-file "$work/recv.ready" >"$work/recv.log" 2>&1 &
  recv_pid=$!
  for _ in $(seq 100); do [ -s "$work/recv.ready" ] && break; sleep 0.1; done
  [ -s "$work/recv.ready" ] || die "the receiver did not start: $(cat "$work/recv.log")"
}
