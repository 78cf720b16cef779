#!/usr/bin/env bash
# A REAL systemd (Debian 12: v252) *user* manager + a private systemd-journald + the
# user's D-Bus (dbus-user-session's dbus.socket), on a machine whose PID 1 is not systemd.
# Root only. Used by tests/it/daemon_systemd.rs for the watch's `bus = "user"`.
#
#   SANDBOX=DIR systemd-user-sandbox.sh check  # exit 0, or 1 with the reason it cannot run
#   SANDBOX=DIR systemd-user-sandbox.sh start  # ~0.3 s
#   SANDBOX=DIR systemd-user-sandbox.sh stop   # removes everything it created
#
# Then, with XDG_RUNTIME_DIR=/run/user/0: unit files go in /run/user/0/systemd/user/,
# `systemctl --user ...`, and the user bus is unix:path=/run/user/0/bus.
#
# Adapted from the testbed's systemd-user-sandbox.sh; the changes, none to the safety
# design (its notes follow): the cgroup name derives from $SANDBOX; `check` says why it
# cannot run (and refuses while another user manager owns /run/user/0, which is one
# per machine); `start` waits for the manager to be on the user bus.
#
# Why it is built like this (all found the hard way on this Firecracker VM, hybrid cgroups):
#  * `systemd --user` refuses to start unless /run/systemd/system/ exists. Creating that on
#    the host would make apt postinst scripts believe systemd is PID 1 -> only inside a
#    private mount namespace (tmpfs over /run/systemd).
#  * DANGER: a systemd manager whose cgroup is the hierarchy root moves EVERY process of
#    the root cgroup into /init.scope, in every mounted v1 controller hierarchy too (it moved
#    PID 1 and the tool harness out of their memory cgroups on the first try). So the manager
#    runs in its own cgroup namespace rooted at a dedicated, controller-less cgroup2 subtree
#    (/sys/fs/cgroup/unified/$CG), and inside the mount namespace only that cgroup2 tree is
#    mounted at /sys/fs/cgroup (pure "unified" mode, no v1 controllers visible at all).
#  * The manager is placed at /user.slice/user-0.slice/user@0.service inside that tree so
#    journald attributes unit output as _SYSTEMD_USER_UNIT (journalctl --user-unit works).
#  * The user manager's default log target "auto" means /dev/console unless stderr is a
#    journal stream -> --log-target=journal (else its messages go to the VM console).
#  * journald, when not socket-activated, binds its own sockets in /run/systemd/journal/.
#    It gets a private journald.conf (ReadKMsg=no: otherwise it copies the kernel ring buffer).
set -euo pipefail
SANDBOX=$(realpath -m "${SANDBOX:?set SANDBOX}")
CG=${SANDBOX_CGROUP:-alertcore-user-sandbox-$(printf %s "$SANDBOX" | md5sum | cut -c1-12)}
HOSTCG=/sys/fs/cgroup/unified/$CG          # cgroup2 mount of this hybrid host
export XDG_RUNTIME_DIR=/run/user/0

inner() {
  # --- cgroups: only our cgroup2 subtree, seen as "/" thanks to the cgroup namespace
  umount -R -l /sys/fs/cgroup
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  mkdir -p /sys/fs/cgroup/system.slice/systemd-journald.service /sys/fs/cgroup/user.slice/user-0.slice/user@0.service
  # --- fake "booted with systemd" marker + journald, all private to this mount namespace
  mount -t tmpfs -o mode=755 tmpfs /run/systemd
  mkdir -p /run/systemd/system /run/systemd/journal "$SANDBOX/journal" /run/log/journal
  mount --bind "$SANDBOX/journal" /run/log/journal
  printf '[Journal]\nStorage=volatile\nReadKMsg=no\nRateLimitBurst=0\n' >"$SANDBOX/journald.conf"
  mount --bind "$SANDBOX/journald.conf" /etc/systemd/journald.conf
  /usr/lib/systemd/systemd-journald >"$SANDBOX/journald.log" 2>&1 &
  jp=$!
  echo "$jp" >"$SANDBOX/journald.pid"
  echo "$jp" >/sys/fs/cgroup/system.slice/systemd-journald.service/cgroup.procs
  for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ] && break; sleep 0.02; done
  mkdir -p "$XDG_RUNTIME_DIR/systemd/user"
  chmod 700 "$XDG_RUNTIME_DIR"
  echo $$ >/sys/fs/cgroup/user.slice/user-0.slice/user@0.service/cgroup.procs
  # default log target "auto" = console (/dev/console!) unless stderr is a journal stream
  exec /lib/systemd/systemd --user --log-target=journal
}

check() {  # the design's preconditions; prints the first one missing
  [ "$(id -u)" = 0 ] || { echo "needs root (namespaces, cgroups, mounts)"; return 1; }
  [ -x /lib/systemd/systemd ] || { echo "no /lib/systemd/systemd (apt-get install systemd)"; return 1; }
  local c; for c in unshare nsenter setsid systemctl busctl md5sum; do
    command -v "$c" >/dev/null || { echo "no $c on PATH (packages: util-linux systemd)"; return 1; }
  done
  [ -f /usr/lib/systemd/user/dbus.socket ] \
    || { echo "no user D-Bus (apt-get install dbus-user-session)"; return 1; }
  [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] \
    || { echo "PID 1 is systemd: this sandbox is for machines whose init is not systemd"; return 1; }
  grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/mounts \
    || { echo "no cgroup2 at /sys/fs/cgroup/unified (hybrid cgroup layout needed)"; return 1; }
  [ -w /sys/fs/cgroup/unified ] || { echo "/sys/fs/cgroup/unified is not writable"; return 1; }
}

case "${1:-}" in
  check) check ;;
  __inner) inner ;;
  start)
    [ ! -e "$XDG_RUNTIME_DIR/systemd" ] \
      || { echo "$XDG_RUNTIME_DIR/systemd exists: another user manager runs" >&2; exit 1; }
    mkdir -p "$SANDBOX"
    rm -rf "$SANDBOX/journal"
    # remember which host dirs we create (the mount namespace does not isolate mkdir on /)
    : >"$SANDBOX/created-dirs"
    for d in "$XDG_RUNTIME_DIR" /run/log/journal; do [ -e "$d" ] || echo "$d" >>"$SANDBOX/created-dirs"; done
    mkdir -p "$XDG_RUNTIME_DIR" /run/log/journal; chmod 700 "$XDG_RUNTIME_DIR"
    [ -s /etc/machine-id ] || systemd-machine-id-setup >/dev/null
    mkdir -p "$HOSTCG"
    # enter the dedicated cgroup (cgroup2 only; v1 controller membership is left untouched),
    # then unshare cgroup+mount namespaces so that cgroup is the namespace root
    setsid bash -c 'echo $$ > "$1/cgroup.procs"; exec unshare --cgroup --mount --propagation private bash "$2" __inner' \
      _ "$HOSTCG" "$0" </dev/null >"$SANDBOX/manager.log" 2>&1 &
    echo $! >"$SANDBOX/manager.pid"
    for _ in $(seq 200); do
      case "$(systemctl --user show -p SystemState --value 2>/dev/null)" in running|degraded) break ;; esac
      sleep 0.05
    done
    # the manager joins the user bus once dbus.socket activates it: ask for its name
    for _ in $(seq 200); do
      busctl --user status org.freedesktop.systemd1 >/dev/null 2>&1 && break
      sleep 0.05
    done
    busctl --user status org.freedesktop.systemd1 >/dev/null \
      || { cat "$SANDBOX/manager.log" >&2; exit 1; }
    echo "export XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR  # manager pid $(cat "$SANDBOX/manager.pid"); journal: journalctl -D $SANDBOX/journal"
    ;;
  run)
    shift
    exec nsenter -t "$(cat "$SANDBOX/manager.pid")" -m -C -- "$@"
    ;;
  stop)
    pid=$(cat "$SANDBOX/manager.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      systemctl --user exit 2>/dev/null || kill "$pid"
      for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
    jpid=$(cat "$SANDBOX/journald.pid" 2>/dev/null || true)
    if [ -n "$jpid" ] && kill -0 "$jpid" 2>/dev/null; then
      kill "$jpid"; for _ in $(seq 100); do kill -0 "$jpid" 2>/dev/null || break; sleep 0.05; done
    fi
    rm -f "$SANDBOX/manager.pid" "$SANDBOX/journald.pid"
    if [ -f "$SANDBOX/created-dirs" ]; then
      while read -r d; do rm -rf -- "$d"; done <"$SANDBOX/created-dirs"; rm -f "$SANDBOX/created-dirs"
    fi
    # remove our cgroup subtree (only empty dirs can be removed; leaf first)
    [ -d "$HOSTCG" ] && find "$HOSTCG" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -d "$HOSTCG" ] && echo "warning: $HOSTCG still has processes: $(cat "$HOSTCG"/cgroup.procs)" >&2 || true
    ;;
  *) echo "usage: $0 start|stop|run CMD..." >&2; exit 2 ;;
esac
