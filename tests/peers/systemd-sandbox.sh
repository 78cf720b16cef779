#!/usr/bin/env bash
# A REAL systemd (Debian 12, v252) running as PID 1 = *system* manager, in private
# pid/mount/cgroup/uts/ipc namespaces, on a machine whose real PID 1 is not systemd.
# It shares the host network namespace, so units reach test peers on 127.0.0.1.
# Root only; uses only the image's `systemd` package. Used by tests/it/systemd.rs.
#
#   SANDBOX=DIR systemd-sandbox.sh check     # exit 0, or 1 with the reason it cannot run here
#   SANDBOX=DIR systemd-sandbox.sh start     # ~0.3 s to "running"
#   SANDBOX=DIR systemd-sandbox.sh run CMD...  # e.g. run systemctl start foo.service
#   SANDBOX=DIR systemd-sandbox.sh stop      # ~0.5 s
#   Unit files: put them in $SANDBOX/units/ (the ONLY unit directory this manager reads),
#   then `run systemctl daemon-reload`. Journal: journalctl -D $SANDBOX/journal -u foo.service
#
# Adapted from the testbed's systemd-pid1-sandbox.sh; the changes, none to the safety design:
#  * the cgroup name derives from $SANDBOX, so concurrent test runs (each with its own
#    SANDBOX dir) never share a cgroup; SANDBOX_CGROUP still overrides it;
#  * `check` says why the sandbox cannot run on this machine, for the test to report;
#  * `stop` does not wait for the host's init to reap the exited unshare process;
#  * `start` with SANDBOX_OVERLAY="/etc /var/lib ..." puts a private overlay over each path
#    inside, so the shipped units can run as shipped (binary in /usr/local/bin, config in
#    /etc/alertcore, state in /var/lib/alertcore) without touching the host;
#  * / is made shared again inside (after the private remount that cuts it off from the
#    host), as on a real system: LoadCredential= needs mount propagation;
#  * `start` starts journald before returning: PID 1 logs to the journal only once
#    journald runs, and journald is otherwise socket-activated by the first unit's output,
#    so that unit's "Started" line would be missing.
#
# Safety design (each point matters on this VM):
#  * Whitelist of units: SYSTEMD_UNIT_PATH=$SANDBOX/units (no trailing ':'), so none of the
#    host's units run: e.g. systemd-tmpfiles-setup would apply "D /tmp" = wipe the shared /tmp,
#    timers.target would run apt-daily, systemd-remount-fs / modules-load touch the host.
#  * container=other: systemd-shutdown skips umount/swapoff/loop+DM detach; and the pid
#    namespace confines kill(-1) and reboot() to the sandbox.
#  * Own cgroup namespace rooted at a dedicated controller-less cgroup2 subtree; only that
#    cgroup2 tree is mounted inside (no v1 controllers) -- a manager at the hierarchy root
#    otherwise migrates every process of the root cgroup (PID 1, the tool harness) into
#    /init.scope.
#  * Read-only /sys and /proc/sys (+ container=other) make udev/sysctl/binfmt no-ops;
#    /dev/console is /dev/null inside (status output would otherwise hit the VM console);
#    own /run (tmpfs) so /run/systemd/system exists only inside.
set -euo pipefail
SANDBOX=$(realpath -m "${SANDBOX:-/tmp/systemd-pid1}")
CG=${SANDBOX_CGROUP:-alertcore-sandbox-$(printf %s "$SANDBOX" | md5sum | cut -c1-12)}
HOSTCG=/sys/fs/cgroup/unified/$CG
self=$(realpath "$0")

write_units() {
  local u=$SANDBOX/units
  mkdir -p "$u/sockets.target.wants"
  cat >"$u/sandbox.target" <<'EOF'
[Unit]
Description=alertcore systemd sandbox
Requires=basic.target
After=basic.target
AllowIsolate=yes
EOF
  cat >"$u/sysinit.target" <<'EOF'
[Unit]
Description=System Initialization (sandbox)
EOF
  cat >"$u/basic.target" <<'EOF'
[Unit]
Description=Basic System (sandbox)
Requires=sysinit.target
Wants=sockets.target
After=sysinit.target sockets.target
EOF
  for t in sockets paths timers slices local-fs swap network network-online nss-lookup; do
    printf '[Unit]\nDescription=%s.target (sandbox)\n' "$t" >"$u/$t.target"
  done
  # shutdown chain: all DefaultDependencies=no, else the implicit Conflicts=shutdown.target
  # makes the poweroff transaction unmergeable ("conflicting jobs 'stop' and 'start'")
  for t in shutdown umount final; do
    printf '[Unit]\nDescription=%s.target (sandbox)\nDefaultDependencies=no\n' "$t" >"$u/$t.target"
  done
  for t in poweroff halt exit reboot; do
    cat >"$u/$t.target" <<EOF
[Unit]
Description=$t (sandbox)
DefaultDependencies=no
Requires=systemd-$t.service
After=systemd-$t.service
AllowIsolate=yes
EOF
    cat >"$u/systemd-$t.service" <<EOF
[Unit]
Description=$t (sandbox)
DefaultDependencies=no
Requires=shutdown.target
After=shutdown.target
SuccessAction=$t-force
[Service]
Type=oneshot
ExecStart=/bin/true
EOF
  done
  # -.slice and system.slice are built into PID 1 (no files needed)
  cp /lib/systemd/system/systemd-journald.socket "$u/"
  ln -sf ../systemd-journald.socket "$u/sockets.target.wants/"
  # system D-Bus: systemctl works without it (private socket), but systemd-run needs it
  cp /lib/systemd/system/dbus.socket /lib/systemd/system/dbus.service "$u/"
  ln -sf ../dbus.socket "$u/sockets.target.wants/"
  cat >"$u/systemd-journald.service" <<'EOF'
[Unit]
Description=Journal Service (sandbox)
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket
Before=sysinit.target
IgnoreOnIsolate=yes
[Service]
ExecStart=/lib/systemd/systemd-journald
Sockets=systemd-journald.socket
Restart=always
RestartSec=0
RuntimeDirectory=systemd/journal
RuntimeDirectoryPreserve=yes
StandardOutput=null
FileDescriptorStoreMax=4224
EOF
}

inner() {  # runs as PID 1 of the new pid namespace, before exec'ing systemd
  mount --make-rprivate /
  # SANDBOX_OVERLAY="/etc /var/lib ...": a private overlay over each, so units can be
  # installed and write there as on a real system while the host's files stay as they
  # are (what is written lands in $SANDBOX/overlay/PATH/upper)
  local p
  for p in ${SANDBOX_OVERLAY:-}; do
    mkdir -p "$SANDBOX/overlay$p/upper" "$SANDBOX/overlay$p/work"
    mount -t overlay overlay \
      -o "lowerdir=$p,upperdir=$SANDBOX/overlay$p/upper,workdir=$SANDBOX/overlay$p/work" "$p"
  done
  # /proc was mounted for us (--mount-proc); make kernel knobs read-only
  mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
  if [ -e /proc/sysrq-trigger ]; then mount --bind /proc/sysrq-trigger /proc/sysrq-trigger && mount -o remount,bind,ro /proc/sysrq-trigger; fi
  # fresh read-only sysfs, with only our cgroup2 subtree (seen as root via cgroupns)
  umount -R -l /sys
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
  # private /run, journal dir visible from the host, private journald.conf
  mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
  mkdir -p /run/log/journal "$SANDBOX/journal"
  mount --bind "$SANDBOX/journal" /run/log/journal
  printf '[Journal]\nStorage=volatile\nReadKMsg=no\nRateLimitBurst=0\n' >"$SANDBOX/journald.conf"
  mount --bind "$SANDBOX/journald.conf" /etc/systemd/journald.conf
  mount --bind /dev/null /dev/console
  # Shared again, now within this namespace only (the rprivate above cut it off from the
  # host's peer groups), as systemd makes / on a real system: LoadCredential= mounts the
  # credentials in a namespace of its own and relies on propagation to show them to the
  # unit (with private mounts, $CREDENTIALS_DIRECTORY stays empty).
  mount --make-rshared /
  exec env -i container=other SYSTEMD_UNIT_PATH="$SANDBOX/units" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --unit=sandbox.target --log-target=journal --show-status=no
}

running() {  # PID $1 exists and is not a zombie
  local st; st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }; [ "${st%% *}" != Z ]
}

host_pid1() {  # host-side PID of the sandbox's PID 1 (child of the unshare process)
  local up; up=$(cat "$SANDBOX/unshare.pid" 2>/dev/null) || return 1
  pgrep -P "$up" | head -1
}

check() {  # the design's preconditions; prints the first one missing
  [ "$(id -u)" = 0 ] || { echo "needs root (namespaces, cgroups, mounts)"; return 1; }
  [ -x /lib/systemd/systemd ] || { echo "no /lib/systemd/systemd (apt-get install systemd)"; return 1; }
  local c; for c in unshare nsenter setsid pgrep systemctl journalctl md5sum; do
    command -v "$c" >/dev/null || { echo "no $c on PATH (packages: util-linux procps systemd)"; return 1; }
  done
  [ -f /lib/systemd/system/dbus.service ] || { echo "no dbus.service (apt-get install dbus)"; return 1; }
  [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] \
    || { echo "PID 1 is systemd: this sandbox is for machines whose init is not systemd"; return 1; }
  # the design needs a controller-less cgroup2 tree next to the v1 controllers (hybrid
  # layout); on a pure cgroup2 host the subtree would carry controllers: not checked
  grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/mounts \
    || { echo "no cgroup2 at /sys/fs/cgroup/unified (hybrid cgroup layout needed)"; return 1; }
  [ -w /sys/fs/cgroup/unified ] || { echo "/sys/fs/cgroup/unified is not writable"; return 1; }
}

case "${1:-}" in
  __inner) inner ;;
  check) check ;;
  start)
    mkdir -p "$SANDBOX"; rm -rf "$SANDBOX/journal"
    [ -s /etc/machine-id ] || systemd-machine-id-setup >/dev/null
    write_units
    mkdir -p "$HOSTCG"
    setsid bash -c 'echo $$ > "$1/cgroup.procs"; exec unshare --pid --fork --mount-proc --mount --propagation private --cgroup --uts --ipc bash "$2" __inner' \
      _ "$HOSTCG" "$self" </dev/null >"$SANDBOX/unshare.log" 2>&1 &
    echo $! >"$SANDBOX/unshare.pid"
    ok=
    for _ in $(seq 200); do
      p=$(host_pid1 || true)
      if [ -n "$p" ] && [ "$(nsenter -t "$p" -m -p -- systemctl is-system-running 2>/dev/null)" = running ]; then ok=1; break; fi
      sleep 0.05
    done
    p=$(host_pid1); echo "$p" >"$SANDBOX/pid1.hostpid"
    echo "sandbox PID 1 = host pid $p ($(nsenter -t "$p" -m -p -- systemctl is-system-running 2>&1))"
    [ -n "$ok" ] || { cat "$SANDBOX/unshare.log" >&2; exit 1; }
    nsenter -t "$p" -m -p -- systemctl start systemd-journald.service
    ;;
  run)
    shift
    exec nsenter -t "$(cat "$SANDBOX/pid1.hostpid")" -m -p -u -i -C -- "$@"
    ;;
  stop)
    p=$(cat "$SANDBOX/pid1.hostpid" 2>/dev/null || true); up=$(cat "$SANDBOX/unshare.pid" 2>/dev/null || true)
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill -s SIGRTMIN+4 "$p"          # = poweroff request to systemd
      for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
      kill -0 "$p" 2>/dev/null && kill -KILL "$p"   # PID 1 of a pid ns: takes the whole ns down
    fi
    # a zombie counts as gone: the host's init here reaps orphans only every second or two
    if [ -n "$up" ]; then for _ in $(seq 100); do running "$up" || break; sleep 0.05; done; fi
    rm -f "$SANDBOX/pid1.hostpid" "$SANDBOX/unshare.pid"
    [ -d "$HOSTCG" ] && find "$HOSTCG" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -d "$HOSTCG" ] && echo "warning: $HOSTCG not empty: $(cat "$HOSTCG"/cgroup.procs)" >&2 || true
    ;;
  *) echo "usage: $0 check|start|stop|run CMD..." >&2; exit 2 ;;
esac
