#!/usr/bin/env bash
# Optional test of the packages under a real systemd: boots a minimal Debian
# (debootstrap) with systemd-nspawn, installs the .deb (and the .rpm, with
# Debian's rpm) inside it, and checks enable/no-start on install, start with
# the full hardening (Type=notify), /healthz, port 443 through a drop-in,
# restart on upgrade, stop on removal and the purge.
#
#   bash packaging/test-nspawn.sh DEB [RPM]
#
# Needs root, a kernel that lets systemd-nspawn boot a container, and
# access to Debian's package archive. The base tree is cached in
# ${OTPGATE_NSPAWN_BASE:-/var/tmp/otpgate-nspawn-base}; each run boots a fresh
# copy of it. Ends with "nspawn: N passed, M failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEB=$(realpath "${1:?usage: test-nspawn.sh DEB [RPM]}")
RPM=${2:+$(realpath "$2")}
BASE=${OTPGATE_NSPAWN_BASE:-/var/tmp/otpgate-nspawn-base}
SUITE=${OTPGATE_NSPAWN_SUITE:-bookworm}
MIRROR=${OTPGATE_NSPAWN_MIRROR:-http://deb.debian.org/debian}

PASS=0
FAIL=0
ok()  { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$*"; }
bad() { FAIL=$((FAIL + 1)); printf 'FAIL - %s\n' "$*"; }
info() { printf '       %s\n' "$*"; }
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected '$2', got '$3')"; fi; }
die() { printf 'test-nspawn: error: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -f "$DEB" ] || die "no .deb: $DEB"

for t in debootstrap:debootstrap systemd-nspawn:systemd-container nsenter:util-linux; do
    if ! command -v "${t%%:*}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${t##*:}" >/dev/null
    fi
done

if [ ! -x "$BASE/usr/bin/systemctl" ] || [ ! -x "$BASE/usr/bin/curl" ]; then
    echo "==> debootstrap $SUITE into $BASE"
    rm -rf "$BASE"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser,curl,ca-certificates \
        "$SUITE" "$BASE" "$MIRROR" > /tmp/otpgate-debootstrap.log 2>&1 \
        || { tail -20 /tmp/otpgate-debootstrap.log >&2; die "debootstrap failed"; }
fi

WORK=$(mktemp -d /var/tmp/otpgate-nspawn.XXXXXX)
NSPAWN_PID=""
cleanup() {
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cp -a "$BASE" "$WORK/root"
echo otpgate-nspawn > "$WORK/root/etc/hostname"
cp "$DEB" "$WORK/root/root/otpgate.deb"
# a newer version of the same .deb, to test the restart on upgrade
mkdir -p "$WORK/up"
dpkg-deb -R "$DEB" "$WORK/up/tree"
ver=$(dpkg-deb -f "$DEB" Version)
sed -i "s/^Version: .*/Version: ${ver}+nspawn1/" "$WORK/up/tree/DEBIAN/control"
dpkg-deb -b "$WORK/up/tree" "$WORK/root/root/otpgate-upgrade.deb" >/dev/null

systemd-nspawn -D "$WORK/root" --register=no --keep-unit -b --console=pipe > "$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
INIT=""
for _ in $(seq 1 100); do
    INIT=$(ps -o pid= --ppid "$NSPAWN_PID" 2>/dev/null | head -n1 | tr -d ' ')
    [ -n "$INIT" ] && break
    sleep 0.2
done
[ -n "$INIT" ] || { cat "$WORK/console.log" >&2; die "container did not start"; }
in_ct() { nsenter -t "$INIT" -a -- "$@"; }
state=""
for _ in $(seq 1 120); do
    state=$(in_ct systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.5
done
info "container systemd: $state"
case "$state" in running|degraded) ;; *) die "container systemd did not finish booting ($state)" ;; esac
mainpid() { in_ct systemctl show -p MainPID --value otpgate.service; }
healthz() { in_ct curl -sk -o /dev/null -w '%{http_code}' --max-time 5 "https://127.0.0.1:$1/healthz" || true; }

echo "## deb under systemd"
if in_ct dpkg -i /root/otpgate.deb > "$WORK/dpkg.log" 2>&1; then ok "dpkg -i"; else bad "dpkg -i"; cat "$WORK/dpkg.log"; fi
eq "enabled on install" enabled "$(in_ct systemctl is-enabled otpgate.service 2>&1)"
eq "not started on install" inactive "$(in_ct systemctl is-active otpgate.service 2>&1)"
if in_ct systemctl start otpgate.service; then ok "systemctl start (Type=notify, hardened unit)"; else bad "systemctl start"; fi
eq "active after start" active "$(in_ct systemctl is-active otpgate.service 2>&1)"
eq "GET https://127.0.0.1:8443/healthz (packaged config)" 200 "$(healthz 8443)"
if in_ct journalctl -u otpgate.service --no-pager | grep -q 'https://[^ ]*/setup'; then
    ok "first-start setup link is in journalctl -u otpgate"
else
    bad "first-start setup link is in journalctl -u otpgate"
fi
score=$(in_ct systemd-analyze security otpgate.service --no-pager 2>/dev/null | sed -n 's/.*Overall exposure level for otpgate.service: \([0-9.]*\).*/\1/p')
info "systemd-analyze security otpgate.service: ${score:-?}"
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then ok "exposure $score <= 2.0"; else bad "exposure '${score:-?}' <= 2.0"; fi
if in_ct runuser -u otpgate -- otpgate admin list >/dev/null 2>&1; then
    ok "'otpgate admin list' as otpgate next to the running service"
else
    bad "'otpgate admin list' as otpgate next to the running service"
fi
in_ct sh -c 'mkdir -p /etc/systemd/system/otpgate.service.d &&
    printf "[Service]\nEnvironment=OTPGATE_LISTEN=0.0.0.0:443\n" > /etc/systemd/system/otpgate.service.d/port.conf &&
    systemctl daemon-reload && systemctl restart otpgate.service' || true
eq "listens on 443 with CAP_NET_BIND_SERVICE (drop-in)" 200 "$(healthz 443)"
in_ct sh -c 'rm -rf /etc/systemd/system/otpgate.service.d && systemctl daemon-reload && systemctl restart otpgate.service' || true
in_ct sh -c 'echo "# local change" >> /etc/otpgate/config.toml'
pid_before=$(mainpid)
if in_ct dpkg -i /root/otpgate-upgrade.deb > "$WORK/dpkg.log" 2>&1; then ok "upgrade with dpkg -i"; else bad "upgrade with dpkg -i"; cat "$WORK/dpkg.log"; fi
pid_after=$(mainpid)
if [ "$pid_after" != 0 ] && [ "$pid_after" != "$pid_before" ]; then
    ok "upgrade restarted the service (MainPID $pid_before -> $pid_after)"
else
    bad "upgrade restarted the service (MainPID $pid_before -> $pid_after)"
fi
eq "active after upgrade" active "$(in_ct systemctl is-active otpgate.service 2>&1)"
if in_ct grep -q '^# local change' /etc/otpgate/config.toml; then ok "modified config kept on upgrade"; else bad "modified config kept on upgrade"; fi
if in_ct dpkg -r otpgate > "$WORK/dpkg.log" 2>&1; then ok "dpkg -r"; else bad "dpkg -r"; cat "$WORK/dpkg.log"; fi
eq "stopped on removal" inactive "$(in_ct systemctl is-active otpgate.service 2>&1)"
if in_ct test -f /var/lib/otpgate/otpgate.db; then ok "data kept on removal"; else bad "data kept on removal"; fi
if in_ct dpkg --purge otpgate > "$WORK/dpkg.log" 2>&1; then ok "dpkg --purge"; else bad "dpkg --purge"; cat "$WORK/dpkg.log"; fi
if in_ct sh -c '! ls -d /var/lib/otpgate /etc/otpgate /etc/systemd/system/multi-user.target.wants/otpgate.service 2>/dev/null | grep -q .'; then
    ok "purge left no /var/lib/otpgate, /etc/otpgate or enable symlink"
else
    bad "purge left no /var/lib/otpgate, /etc/otpgate or enable symlink"
fi

if [ -n "${RPM:-}" ]; then
    echo "## rpm under systemd (Debian's rpm, --nodeps)"
    cp "$RPM" "$WORK/root/root/otpgate.rpm"
    if in_ct sh -c 'command -v rpm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm; }' >/dev/null 2>&1; then
        flags="--nodeps"
        in_ct rpm --help 2>&1 | grep -q -- '--force-debian' && flags="$flags --force-debian"
        in_ct sh -c 'userdel otpgate; groupdel otpgate' >/dev/null 2>&1 || true
        # shellcheck disable=SC2086
        if in_ct rpm -i $flags /root/otpgate.rpm; then ok "rpm -i"; else bad "rpm -i"; fi
        eq "rpm: enabled by preset on install" enabled "$(in_ct systemctl is-enabled otpgate.service 2>&1)"
        eq "rpm: not started on install" inactive "$(in_ct systemctl is-active otpgate.service 2>&1)"
        in_ct systemctl start otpgate.service || true
        eq "rpm: active after start" active "$(in_ct systemctl is-active otpgate.service 2>&1)"
        eq "rpm: GET /healthz" 200 "$(healthz 8443)"
        # shellcheck disable=SC2086
        if in_ct rpm -e $flags otpgate; then ok "rpm -e"; else bad "rpm -e"; fi
        eq "rpm: stopped on erase" inactive "$(in_ct systemctl is-active otpgate.service 2>&1)"
        if in_ct test -f /var/lib/otpgate/otpgate.db; then ok "rpm: data kept on erase"; else bad "rpm: data kept on erase"; fi
    else
        bad "rpm installed inside the container"
    fi
fi

echo
echo "nspawn: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
