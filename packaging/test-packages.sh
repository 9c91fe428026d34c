#!/usr/bin/env bash
# CI test of the otpgate packages. Run as root on a Debian-based machine
# (systemd need not be running: a container is fine).
#
#   bash packaging/test-packages.sh                  # build, then test
#   bash packaging/test-packages.sh DEB [RPM]        # test existing packages
#
# What it does:
#   1. installs what it needs with apt-get (rpm, systemd-analyze, curl);
#   2. inspects the .deb (dpkg-deb -c/-I/-e/-x) and the .rpm (rpm -qlp/-qip,
#      --configfiles, --docfiles, --scripts, --dump) for every file,
#      attribute and maintainer script/scriptlet;
#   3. checks the unit's directives, runs `systemd-analyze verify` and
#      `systemd-analyze security --offline=true` (exposure must be <= 2.0);
#   4. installs the .deb with dpkg -i, checks user, group, directories and
#      the enable symlink, runs the installed binary as the otpgate user with
#      the packaged config on a free loopback port until /healthz answers;
#   5. upgrades to a re-versioned copy of the .deb (modified config kept,
#      data kept), purges (everything gone), then a separate install and
#      plain `dpkg -r` round (data and config kept), then purge;
#   6. installs the .rpm with rpm itself (--nodeps, Debian's rpm) to run its
#      scriptlets for real, then erases it (data kept);
#   7. with OTPGATE_TEST_NSPAWN=1, also runs packaging/test-nspawn.sh: the
#      same packages in a booted systemd-nspawn container (real systemd).
# Ends with "packaging: N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PASS=0
FAIL=0
SKIP=0
ok()   { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$*"; }
bad()  { FAIL=$((FAIL + 1)); printf 'FAIL - %s\n' "$*"; }
skip() { SKIP=$((SKIP + 1)); printf 'skip - %s\n' "$*"; }
info() { printf '       %s\n' "$*"; }
section() { printf '\n## %s\n' "$*"; }
die()  { printf 'test-packages: error: %s\n' "$*" >&2; exit 2; }

# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
    local desc=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$desc"; else bad "$desc"; fi
}
# has FILE EXTENDED-REGEX [DESCRIPTION]: passes when a line of FILE matches.
has() {
    local file=$1 re=$2 desc=${3:-"$2"}
    if grep -Eq -- "$re" "$file"; then ok "$desc"; else bad "$desc (no line matching '$re' in ${file##*/})"; fi
}
# hasnt FILE EXTENDED-REGEX DESCRIPTION: passes when no line of FILE matches.
hasnt() {
    local file=$1 re=$2 desc=$3
    if grep -Eq -- "$re" "$file"; then bad "$desc (found '$re' in ${file##*/})"; else ok "$desc"; fi
}
# eq DESCRIPTION EXPECTED ACTUAL
eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected '$2', got '$3')"; fi
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs and purges the package)"

TMP=$(mktemp -d /tmp/otpgate-pkgtest.XXXXXX)
chmod 0755 "$TMP"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        sleep 1
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- tools -------------------------------------------------------------------
section "tools"
apt_updated=""
apt_need() {  # apt_need PACKAGE: install PACKAGE if apt has a candidate for it
    local pkg=$1
    if [ -z "$apt_updated" ]; then
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    local cand
    cand=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
    if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
        die "apt has no candidate for $pkg"
    fi
    info "apt-get install $pkg ($cand)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
}
command -v rpm >/dev/null 2>&1 || apt_need rpm
command -v systemd-analyze >/dev/null 2>&1 || apt_need systemd
command -v curl >/dev/null 2>&1 || apt_need curl
for t in dpkg dpkg-deb rpm systemd-analyze curl setpriv getent stat; do
    command -v "$t" >/dev/null 2>&1 || die "$t is not available"
done
info "$(rpm --version); $(systemd-analyze --version | head -n1)"

# --- packages ------------------------------------------------------------------
section "packages"
if [ $# -ge 1 ]; then
    DEB=$(realpath "$1")
    RPM=${2:+$(realpath "$2")}
else
    bash "$ROOT/packaging/build-packages.sh"
    DEB=$(ls -t "$ROOT"/target/debian/otpgate_*.deb | head -n1)
    RPM=$(ls -t "$ROOT"/target/generate-rpm/otpgate-*.rpm | head -n1)
fi
[ -f "$DEB" ] || die "no .deb: $DEB"
info "deb: $DEB"
if [ -n "${RPM:-}" ]; then
    [ -f "$RPM" ] || die "no .rpm: $RPM"
    info "rpm: $RPM"
fi

REPO_UNIT="$ROOT/systemd/otpgate.service"
REPO_CONFIG="$ROOT/packaging/config.toml"

# --- .deb contents -------------------------------------------------------------
section "deb: contents (dpkg-deb -c)"
dpkg-deb -c "$DEB" > "$TMP/deb.list"
awk '{print $NF}' "$TMP/deb.list" | sed 's|^\./|/|' > "$TMP/deb.paths"
for p in /usr/bin/otpgate \
         /etc/otpgate/config.toml \
         /usr/share/man/man1/otpgate.1.gz \
         /usr/share/bash-completion/completions/otpgate \
         /usr/share/zsh/vendor-completions/_otpgate \
         /usr/share/fish/vendor_completions.d/otpgate.fish \
         /usr/share/doc/otpgate/README.md \
         /usr/share/doc/otpgate/copyright; do
    has "$TMP/deb.paths" "^${p//./\\.}\$" "deb contains $p"
done
has "$TMP/deb.paths" '^(/usr)?/lib/systemd/system/otpgate\.service$' "deb contains the systemd unit in the unit directory"
has "$TMP/deb.list" '^-rwxr-xr-x (root/root|0/0) .* \./usr/bin/otpgate$' "deb: /usr/bin/otpgate is 0755 root:root"
has "$TMP/deb.list" '^-rw-r----- (root/root|0/0) .* \./etc/otpgate/config\.toml$' "deb: config.toml is shipped 0640 (group set to otpgate by postinst)"

section "deb: control (dpkg-deb -I)"
dpkg-deb -I "$DEB" > "$TMP/deb.info"
cat "$TMP/deb.info" | sed 's/^/       /'
eq "deb Package is otpgate" "otpgate" "$(dpkg-deb -f "$DEB" Package)"
has "$TMP/deb.info" '^ *Depends:.*adduser' "deb depends on adduser"
has "$TMP/deb.info" '^ *Installed-Size: [0-9]+' "deb declares Installed-Size"
mkdir -p "$TMP/deb-control"
dpkg-deb -e "$DEB" "$TMP/deb-control"
if [ -f "$TMP/deb-control/conffiles" ]; then
    has "$TMP/deb-control/conffiles" '^/etc/otpgate/config\.toml$' "deb conffiles lists /etc/otpgate/config.toml"
else
    bad "deb has no conffiles"
fi
for s in postinst prerm postrm; do
    f="$TMP/deb-control/$s"
    if [ -f "$f" ]; then
        ok "deb has $s"
        check "deb $s is executable" test -x "$f"
        check "deb $s is valid sh (sh -n)" sh -n "$f"
        hasnt "$f" '#DEBHELPER#' "deb $s: #DEBHELPER# was replaced"
    else
        bad "deb has $s"
    fi
done
PI="$TMP/deb-control/postinst"; PR="$TMP/deb-control/prerm"; PU="$TMP/deb-control/postrm"
if [ -f "$PI" ] && [ -f "$PR" ] && [ -f "$PU" ]; then
    has "$PI" 'adduser --system .*--ingroup otpgate' "postinst creates the otpgate system user"
    has "$PI" '--home /var/lib/otpgate' "postinst: user's home is /var/lib/otpgate"
    has "$PI" '--shell /usr/sbin/nologin' "postinst: user has no login shell"
    has "$PI" '--no-create-home' "postinst: no home directory is populated"
    has "$PI" 'addgroup --system .*otpgate' "postinst creates the otpgate system group"
    has "$PI" 'install -d -m 0750 -o otpgate -g otpgate /var/lib/otpgate' "postinst creates /var/lib/otpgate 0750 otpgate:otpgate"
    has "$PI" "deb-systemd-helper enable '?otpgate\.service" "postinst enables the unit (deb-systemd-helper enable)"
    has "$PI" "deb-systemd-invoke try-restart '?otpgate\.service" "postinst restarts the unit on upgrade (try-restart)"
    has "$PI" 'if \[ -n "\$2" \]; then' "postinst: restart only when upgrading (\$2 set)"
    has "$PI" 'if \[ -d /run/systemd/system \]' "postinst: systemctl calls guarded by /run/systemd/system"
    hasnt "$PI" 'deb-systemd-invoke (start|restart) ' "postinst does not start the unit on install"
    has "$PR" "deb-systemd-invoke stop '?otpgate\.service" "prerm stops the unit"
    has "$PR" '\[ -d /run/systemd/system \] && \[ "\$1" = remove \]' "prerm: stop only on remove, guarded by /run/systemd/system"
    has "$PU" "deb-systemd-helper purge '?otpgate\.service" "postrm: deb-systemd-helper purge on purge"
    has "$PU" 'if \[ "\$1" = "purge" \]' "postrm has a purge branch"
    has "$PU" 'rm -rf /var/lib/otpgate' "postrm purge removes /var/lib/otpgate"
fi

section "deb: files (dpkg-deb -x)"
mkdir -p "$TMP/deb-root"
dpkg-deb -x "$DEB" "$TMP/deb-root"
DEB_UNIT=$(ls "$TMP"/deb-root/usr/lib/systemd/system/otpgate.service "$TMP"/deb-root/lib/systemd/system/otpgate.service 2>/dev/null | head -n1 || true)
DEB_CONFIG="$TMP/deb-root/etc/otpgate/config.toml"
if [ -f "$REPO_UNIT" ]; then
    check "deb unit is systemd/otpgate.service" cmp -s "$DEB_UNIT" "$REPO_UNIT"
fi
if [ -f "$REPO_CONFIG" ]; then
    check "deb config is packaging/config.toml" cmp -s "$DEB_CONFIG" "$REPO_CONFIG"
fi
has "$DEB_CONFIG" '0\.0\.0\.0:8443' "packaged config listens on 0.0.0.0:8443"
has "$DEB_CONFIG" '^[[:space:]]*data_dir[[:space:]]*=[[:space:]]*"/var/lib/otpgate"' "packaged config sets data_dir = \"/var/lib/otpgate\""
has "$DEB_CONFIG" '^[[:space:]]*#' "packaged config is commented"
check "man page is gzip'd roff with .TH" sh -c "zcat '$TMP/deb-root/usr/share/man/man1/otpgate.1.gz' | grep -q '^\.TH'"
for c in usr/share/bash-completion/completions/otpgate \
         usr/share/zsh/vendor-completions/_otpgate \
         usr/share/fish/vendor_completions.d/otpgate.fish; do
    check "completion /$c is non-empty and mentions otpgate" grep -q otpgate "$TMP/deb-root/$c"
done
has "$TMP/deb-root/usr/share/zsh/vendor-completions/_otpgate" '^#compdef otpgate' "zsh completion starts with #compdef otpgate"
has "$TMP/deb-root/usr/share/doc/otpgate/copyright" 'MIT|Permission is hereby granted' "copyright carries the MIT license"
check "binary is stripped (no .symtab)" sh -c "! readelf -S '$TMP/deb-root/usr/bin/otpgate' 2>/dev/null | grep -q '\.symtab'"

section "unit: directives"
U="$DEB_UNIT"
for d in 'Type=notify' 'User=otpgate' 'Group=otpgate' 'ExecStart=/usr/bin/otpgate serve' \
         'StateDirectory=otpgate' 'StateDirectoryMode=0750' 'ConfigurationDirectory=otpgate' \
         'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
         'PrivateDevices=yes' 'ProtectKernelTunables=yes' 'ProtectKernelModules=yes' \
         'ProtectKernelLogs=yes' 'ProtectControlGroups=yes' \
         'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'RestrictNamespaces=yes' \
         'LockPersonality=yes' 'MemoryDenyWriteExecute=yes' 'SystemCallFilter=@system-service' \
         'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
         'Restart=on-failure' 'TimeoutStopSec=[0-9]+(s|min)?' 'LimitNOFILE=[0-9]+' \
         'ProtectClock=yes' 'ProtectHostname=yes' 'RestrictRealtime=yes' 'RestrictSUIDSGID=yes' \
         'RemoveIPC=yes' 'ProtectProc=invisible' 'ProcSubset=pid' 'SystemCallArchitectures=native' \
         'UMask=0077' 'DevicePolicy=closed' 'KeyringMode=private' 'WantedBy=multi-user.target'; do
    has "$U" "^${d}\$" "unit: $d"
done
hasnt "$U" '^IPAddressDeny=' "unit: no IPAddressDeny (it serves the LAN)"
hasnt "$U" '^PrivateUsers=(yes|true|1)' "unit: no PrivateUsers (would void CAP_NET_BIND_SERVICE)"
hasnt "$U" '^StandardOutput=' "unit: stdout goes to the journal (default)"

# --- .rpm ------------------------------------------------------------------------
RQ=(rpm -q --nosignature --nodigest -p)
if [ -n "${RPM:-}" ]; then
    section "rpm: metadata (rpm -qip)"
    "${RQ[@]}" -i "$RPM" > "$TMP/rpm.info"
    sed 's/^/       /' "$TMP/rpm.info"
    has "$TMP/rpm.info" '^Name +: otpgate$' "rpm Name is otpgate"
    has "$TMP/rpm.info" '^License +: MIT' "rpm License is MIT"
    "${RQ[@]}" --requires "$RPM" > "$TMP/rpm.requires"
    has "$TMP/rpm.requires" '^/usr/sbin/useradd' "rpm requires useradd (for %pre)"

    section "rpm: contents (rpm -qlp)"
    "${RQ[@]}" -l "$RPM" > "$TMP/rpm.list"
    for p in /usr/bin/otpgate \
             /usr/lib/systemd/system/otpgate.service \
             /usr/lib/systemd/system-preset/80-otpgate.preset \
             /etc/otpgate/config.toml \
             /usr/share/man/man1/otpgate.1.gz \
             /usr/share/bash-completion/completions/otpgate \
             /usr/share/zsh/site-functions/_otpgate \
             /usr/share/fish/vendor_completions.d/otpgate.fish \
             /usr/share/doc/otpgate/README.md \
             /usr/share/doc/otpgate/LICENSE; do
        has "$TMP/rpm.list" "^${p//./\\.}\$" "rpm contains $p"
    done
    "${RQ[@]}" --configfiles "$RPM" > "$TMP/rpm.config"
    has "$TMP/rpm.config" '^/etc/otpgate/config\.toml$' "rpm marks /etc/otpgate/config.toml as config"
    "${RQ[@]}" --qf '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEMODES:perms}\n]' "$RPM" > "$TMP/rpm.attrs"
    has "$TMP/rpm.attrs" '^/etc/otpgate/config\.toml c[a-z]*n[a-z]* root otpgate -rw-r-----$' "rpm config is %config(noreplace) root:otpgate 0640"
    has "$TMP/rpm.attrs" '^/usr/bin/otpgate [a-z]* root root -rwxr-xr-x$' "rpm /usr/bin/otpgate is 0755 root:root"
    "${RQ[@]}" --docfiles "$RPM" > "$TMP/rpm.docs"
    has "$TMP/rpm.docs" '^/usr/share/doc/otpgate/README\.md$' "rpm marks README.md as doc"
    has "$TMP/rpm.docs" '^/usr/share/doc/otpgate/LICENSE$' "rpm marks LICENSE as doc"

    section "rpm: same payload as the deb (rpm -qp --dump)"
    "${RQ[@]}" --dump "$RPM" > "$TMP/rpm.dump"
    digest_of() { awk -v p="$1" '$1 == p {print $4}' "$TMP/rpm.dump"; }
    rpm_bin_digest=$(digest_of /usr/bin/otpgate)
    case ${#rpm_bin_digest} in
        64) sum=sha256sum ;;
        32) sum=md5sum ;;
        *) sum="" ;;
    esac
    if [ -n "$sum" ]; then
        eq "rpm and deb ship the same /usr/bin/otpgate" "$rpm_bin_digest" "$($sum "$TMP/deb-root/usr/bin/otpgate" | cut -d' ' -f1)"
        eq "rpm and deb ship the same unit" "$(digest_of /usr/lib/systemd/system/otpgate.service)" "$($sum "$DEB_UNIT" | cut -d' ' -f1)"
        eq "rpm and deb ship the same config" "$(digest_of /etc/otpgate/config.toml)" "$($sum "$DEB_CONFIG" | cut -d' ' -f1)"
        eq "rpm and deb ship the same man page" "$(digest_of /usr/share/man/man1/otpgate.1.gz)" "$($sum "$TMP/deb-root/usr/share/man/man1/otpgate.1.gz" | cut -d' ' -f1)"
    else
        bad "rpm --dump gives no usable file digest"
    fi

    section "rpm: scriptlets (rpm -qp --scripts)"
    "${RQ[@]}" --scripts "$RPM" > "$TMP/rpm.scripts"
    sed 's/^/       /' "$TMP/rpm.scripts"
    for tag in PREIN POSTIN PREUN POSTUN; do
        "${RQ[@]}" --qf "%{$tag}" "$RPM" > "$TMP/rpm.$tag"
        if [ -s "$TMP/rpm.$tag" ] && ! grep -qx '(none)' "$TMP/rpm.$tag"; then
            ok "rpm has a $tag scriptlet"
            check "rpm $tag scriptlet is valid sh (sh -n)" sh -n "$TMP/rpm.$tag"
        else
            bad "rpm has a $tag scriptlet"
        fi
    done
    has "$TMP/rpm.PREIN" 'groupadd -r otpgate' "rpm %pre creates the otpgate system group"
    has "$TMP/rpm.PREIN" 'useradd -r -g otpgate -d /var/lib/otpgate -M -s /sbin/nologin' "rpm %pre creates the otpgate system user, no shell, no home"
    has "$TMP/rpm.POSTIN" 'install -d -m 0750 -o otpgate -g otpgate /var/lib/otpgate' "rpm %post creates /var/lib/otpgate 0750"
    has "$TMP/rpm.POSTIN" 'systemctl --no-reload preset otpgate\.service' "rpm %post applies the preset (enables, no start)"
    has "$TMP/rpm.POSTIN" '"\$1" -eq 1' "rpm %post: preset only on first install"
    hasnt "$TMP/rpm.POSTIN" 'systemctl (start|restart|enable --now)' "rpm %post does not start the unit"
    has "$TMP/rpm.PREUN" '"\$1" -eq 0' "rpm %preun acts on erase only"
    has "$TMP/rpm.PREUN" 'disable --now otpgate\.service' "rpm %preun disables and stops the unit"
    has "$TMP/rpm.POSTUN" 'systemctl try-restart otpgate\.service' "rpm %postun restarts the unit on upgrade"
    has "$TMP/rpm.POSTUN" '"\$1" -ge 1' "rpm %postun: restart only on upgrade"
    has "$TMP/rpm.POSTUN" '\[ -d /run/systemd/system \]' "rpm %postun guarded by /run/systemd/system"
fi

# --- install, run, upgrade, remove, purge ---------------------------------------
pkg_status() { dpkg-query -W -f='${db:Status-Status}' otpgate 2>/dev/null || echo "not-installed"; }
purge_if_present() {
    case "$(pkg_status)" in
        not-installed|"") ;;
        *) dpkg --purge otpgate >/dev/null ;;
    esac
}
installed_unit() {
    local u
    for u in /usr/lib/systemd/system/otpgate.service /lib/systemd/system/otpgate.service; do
        if [ -f "$u" ]; then echo "$u"; return 0; fi
    done
}
as_otpgate() {  # run a command as otpgate with a service-like environment
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/var/lib/otpgate LANG=C.UTF-8 \
        setpriv --reuid=otpgate --regid=otpgate --init-groups --inh-caps=-all -- "$@"
}
# serve_and_probe LABEL: run the installed binary as otpgate on a free
# loopback port with the packaged config, wait for /healthz, stop it.
serve_and_probe() {
    local label=$1 log="$TMP/serve-$1.log" port="" i code
    (cd / && umask 0077 && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/lib/otpgate LANG=C.UTF-8 \
        setpriv --reuid=otpgate --regid=otpgate --init-groups --inh-caps=-all -- \
        /usr/bin/otpgate serve --listen 127.0.0.1:0) > "$log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 1 300); do
        port=$(sed -n 's|.*listening on https://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n1)
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$port" ]; then
        ok "$label: server started as otpgate and printed 'listening on https://127.0.0.1:$port'"
        code=""
        for i in $(seq 1 60); do
            code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "https://127.0.0.1:$port/healthz" || true)
            [ "$code" = 200 ] && break
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        eq "$label: GET https://127.0.0.1:$port/healthz answers 200 (within 30 s)" 200 "$code"
        check "$label: curl -fsk /healthz" curl -fsk --max-time 5 "https://127.0.0.1:$port/healthz"
    else
        bad "$label: server printed 'listening on https://127.0.0.1:PORT' within 30 s"
    fi
    check "$label: server process owned by otpgate" sh -c "[ \"\$(ps -o user= -p $SERVER_PID)\" = otpgate ]"
    if [ "$label" = deb ]; then
        # first start of a fresh install: the setup link goes to stdout/stderr (the journal)
        has "$log" 'https://[^ ]*/setup' "$label: first-start setup link is in the log (journal)"
    fi
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        bad "$label: server stops within 10 s of SIGTERM"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    else
        ok "$label: server stops within 10 s of SIGTERM"
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    info "--- server log ($label) ---"
    sed 's/^/       | /' "$log" | head -n 40
}
state_files() { find /var/lib/otpgate -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null | sort; }

section "deb: install (dpkg -i)"
purge_if_present
check "dpkg -i succeeds" dpkg -i "$DEB"
eq "package is installed" installed "$(pkg_status)"
check "otpgate group exists" getent group otpgate
if getent passwd otpgate >/dev/null; then
    ok "otpgate user exists"
    IFS=: read -r _ _ uid gid _ home shell < <(getent passwd otpgate)
    check "otpgate is a system user (uid $uid < 1000)" test "$uid" -lt 1000
    eq "otpgate's primary group is otpgate" "$(getent group otpgate | cut -d: -f3)" "$gid"
    eq "otpgate's home is /var/lib/otpgate" /var/lib/otpgate "$home"
    case "$shell" in
        */nologin|*/false) ok "otpgate has no login shell ($shell)" ;;
        *) bad "otpgate has no login shell (got $shell)" ;;
    esac
    check "otpgate has no usable password" sh -c "getent shadow otpgate | cut -d: -f2 | grep -qE '^[!*]'"
else
    bad "otpgate user exists"
fi
eq "/var/lib/otpgate is 0750 otpgate:otpgate" "750 otpgate otpgate" "$(stat -c '%a %U %G' /var/lib/otpgate 2>&1)"
eq "/etc/otpgate/config.toml is 0640 root:otpgate" "640 root otpgate" "$(stat -c '%a %U %G' /etc/otpgate/config.toml 2>&1)"
check "dpkg records /etc/otpgate/config.toml as a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' otpgate | grep -q ' /etc/otpgate/config.toml '"
check "/usr/bin/otpgate is executable" test -x /usr/bin/otpgate
INSTALLED_UNIT=$(installed_unit)
check "unit installed in the systemd unit directory" test -n "$INSTALLED_UNIT"
check "unit is enabled (multi-user.target.wants symlink)" test -L /etc/systemd/system/multi-user.target.wants/otpgate.service
check "the enable symlink points to the installed unit" sh -c "readlink -f /etc/systemd/system/multi-user.target.wants/otpgate.service | grep -q 'systemd/system/otpgate.service\$'"
check "install did not start otpgate" sh -c "! pgrep -u otpgate -x otpgate"
check "man page installed" test -s /usr/share/man/man1/otpgate.1.gz
check "otpgate --help runs as the otpgate user" as_otpgate /usr/bin/otpgate --help
check "otpgate user can read the packaged config" as_otpgate test -r /etc/otpgate/config.toml
check "otpgate user can write /var/lib/otpgate" as_otpgate test -w /var/lib/otpgate

section "unit: systemd-analyze"
if [ -n "$INSTALLED_UNIT" ]; then
    verify_opts=()
    command -v man >/dev/null 2>&1 || verify_opts+=(--man=no)
    if systemd-analyze verify "${verify_opts[@]}" "$INSTALLED_UNIT" > "$TMP/verify.log" 2>&1; then
        ok "systemd-analyze verify ${verify_opts[*]} $INSTALLED_UNIT"
    else
        bad "systemd-analyze verify ${verify_opts[*]} $INSTALLED_UNIT"
    fi
    sed 's/^/       | /' "$TMP/verify.log"
    if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
        systemd-analyze security --offline=true "$INSTALLED_UNIT" > "$TMP/security.log" 2>&1 || true
        grep -E '^✗|^[!x] ' "$TMP/security.log" | sed 's/^/       | /' || true
        line=$(grep -E 'Overall exposure level' "$TMP/security.log" | tail -n1)
        info "$line"
        score=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9][0-9]*\.[0-9]\).*/\1/p')
        if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
            ok "systemd-analyze security --offline=true: exposure $score <= 2.0"
        else
            bad "systemd-analyze security --offline=true: exposure '${score:-?}' <= 2.0"
        fi
    else
        skip "systemd-analyze security --offline (not supported by this systemd)"
    fi
fi

section "deb: run the installed binary"
serve_and_probe deb
state_before=$(state_files)
if [ -n "$state_before" ]; then
    ok "server created its state in /var/lib/otpgate (data_dir from the packaged config)"
    info "$(echo "$state_before" | tr '\n' ' ')"
else
    bad "server created its state in /var/lib/otpgate (data_dir from the packaged config)"
fi
if as_otpgate /usr/bin/otpgate config check > "$TMP/config-check.log" 2>&1; then
    ok "'otpgate config check' as otpgate, no flags, succeeds"
else
    bad "'otpgate config check' as otpgate, no flags, succeeds"
    sed 's/^/       | /' "$TMP/config-check.log"
fi
has "$TMP/config-check.log" '/etc/otpgate/config\.toml' "otpgate finds /etc/otpgate/config.toml by itself"
has "$TMP/config-check.log" '/var/lib/otpgate' "the packaged config sets data_dir /var/lib/otpgate"
has "$TMP/config-check.log" '0\.0\.0\.0:8443' "effective listen address is 0.0.0.0:8443"
check "'otpgate admin list' as otpgate, no flags, reads the packaged data" as_otpgate /usr/bin/otpgate admin list
check "state files are owned by otpgate" sh -c "[ -z \"\$(find /var/lib/otpgate ! -user otpgate)\" ]"
check "state files are not world-accessible" sh -c "[ -z \"\$(find /var/lib/otpgate -mindepth 1 -perm /o=rwx)\" ]"

section "deb: upgrade (dpkg -i of a newer version)"
echo "# local change kept across upgrades" >> /etc/otpgate/config.toml
old_uid=$(id -u otpgate)
ver=$(dpkg-deb -f "$DEB" Version)
mkdir -p "$TMP/up"
dpkg-deb -R "$DEB" "$TMP/up/root"
sed -i "s/^Version: .*/Version: ${ver}+upgradetest1/" "$TMP/up/root/DEBIAN/control"
dpkg-deb -b "$TMP/up/root" "$TMP/up/otpgate_upgrade.deb" >/dev/null
check "dpkg -i of version ${ver}+upgradetest1 succeeds" dpkg -i "$TMP/up/otpgate_upgrade.deb"
eq "upgraded version is installed" "${ver}+upgradetest1" "$(dpkg-query -W -f='${Version}' otpgate)"
check "modified config.toml is kept on upgrade" grep -q '^# local change kept across upgrades' /etc/otpgate/config.toml
check "no config.toml.dpkg-new/dpkg-dist left" sh -c "! ls /etc/otpgate/config.toml.dpkg-* 2>/dev/null | grep -q ."
eq "config.toml still 0640 root:otpgate after upgrade" "640 root otpgate" "$(stat -c '%a %U %G' /etc/otpgate/config.toml 2>&1)"
eq "state in /var/lib/otpgate kept on upgrade" "$state_before" "$(state_files)"
eq "otpgate uid unchanged on upgrade" "$old_uid" "$(id -u otpgate)"
check "still enabled after upgrade" test -L /etc/systemd/system/multi-user.target.wants/otpgate.service
serve_and_probe upgraded

section "deb: purge (dpkg --purge)"
check "dpkg --purge otpgate succeeds" dpkg --purge otpgate
eq "package is gone from dpkg's database" not-installed "$(pkg_status)"
check "/usr/bin/otpgate is gone" test ! -e /usr/bin/otpgate
check "/etc/otpgate is gone" test ! -e /etc/otpgate
check "/var/lib/otpgate is gone" test ! -e /var/lib/otpgate
check "unit file is gone" sh -c "[ -z \"\$(ls /usr/lib/systemd/system/otpgate.service /lib/systemd/system/otpgate.service 2>/dev/null)\" ]"
check "enable symlink is gone" test ! -e /etc/systemd/system/multi-user.target.wants/otpgate.service -a ! -L /etc/systemd/system/multi-user.target.wants/otpgate.service
leftovers=$(find /etc /usr /var/lib /run -xdev -name '*otpgate*' 2>/dev/null | grep -v -e '^/var/lib/rpm' || true)
if [ -z "$leftovers" ]; then
    ok "no file named *otpgate* left in /etc /usr /var/lib /run"
else
    bad "files left after purge: $(echo "$leftovers" | tr '\n' ' ')"
fi
if getent passwd otpgate >/dev/null; then
    info "kept after purge (Debian convention): system user/group otpgate ($(getent passwd otpgate))"
fi

section "deb: install + plain remove (dpkg -r) keeps data"
check "dpkg -i succeeds (second round)" dpkg -i "$DEB"
echo "marker" > /var/lib/otpgate/test-marker
chown otpgate:otpgate /var/lib/otpgate/test-marker
check "dpkg -r otpgate succeeds" dpkg -r otpgate
eq "package state is config-files" config-files "$(pkg_status)"
check "/usr/bin/otpgate is gone after remove" test ! -e /usr/bin/otpgate
check "data in /var/lib/otpgate is kept after remove" test -f /var/lib/otpgate/test-marker
eq "/var/lib/otpgate still 0750 otpgate:otpgate after remove" "750 otpgate otpgate" "$(stat -c '%a %U %G' /var/lib/otpgate 2>&1)"
check "/etc/otpgate/config.toml is kept after remove" test -f /etc/otpgate/config.toml
check "otpgate user is kept after remove" getent passwd otpgate
check "dpkg --purge after remove succeeds" dpkg --purge otpgate
check "/var/lib/otpgate is gone after purge" test ! -e /var/lib/otpgate
check "/etc/otpgate is gone after purge" test ! -e /etc/otpgate

# --- rpm install with its scriptlets ---------------------------------------------
if [ -n "${RPM:-}" ]; then
    section "rpm: install and erase with rpm (scriptlets run for real)"
    rpm_flags=(--nodeps)
    rpm --help 2>&1 | grep -q -- '--force-debian' && rpm_flags+=(--force-debian)
    rpm -e --nodeps otpgate >/dev/null 2>&1 || true
    # let %pre create the user and group again
    if getent passwd otpgate >/dev/null; then userdel otpgate >/dev/null 2>&1 || true; fi
    if getent group otpgate >/dev/null; then groupdel otpgate >/dev/null 2>&1 || true; fi
    if rpm -i "${rpm_flags[@]}" "$RPM" > "$TMP/rpm-install.log" 2>&1; then
        ok "rpm -i ${rpm_flags[*]} succeeds"
    else
        bad "rpm -i ${rpm_flags[*]} succeeds"
        sed 's/^/       | /' "$TMP/rpm-install.log"
    fi
    check "rpm %pre created the otpgate group" getent group otpgate
    check "rpm %pre created the otpgate user with /sbin/nologin, home /var/lib/otpgate" \
        sh -c "getent passwd otpgate | grep -q ':/var/lib/otpgate:/sbin/nologin\$'"
    check "rpm: otpgate is a system user" sh -c "[ \"\$(id -u otpgate)\" -lt 1000 ]"
    eq "rpm %post: /var/lib/otpgate is 0750 otpgate:otpgate" "750 otpgate otpgate" "$(stat -c '%a %U %G' /var/lib/otpgate 2>&1)"
    eq "rpm: /etc/otpgate/config.toml is 0640 root:otpgate" "640 root otpgate" "$(stat -c '%a %U %G' /etc/otpgate/config.toml 2>&1)"
    check "rpm: /usr/bin/otpgate installed" test -x /usr/bin/otpgate
    check "rpm: unit installed in /usr/lib/systemd/system" test -f /usr/lib/systemd/system/otpgate.service
    if command -v systemctl >/dev/null 2>&1; then
        check "rpm %post: preset enabled the unit" test -L /etc/systemd/system/multi-user.target.wants/otpgate.service
    else
        skip "rpm %post preset (no systemctl here)"
    fi
    serve_and_probe rpm
    echo "# local change" >> /etc/otpgate/config.toml
    if rpm -e "${rpm_flags[@]}" otpgate > "$TMP/rpm-erase.log" 2>&1; then
        ok "rpm -e succeeds"
    else
        bad "rpm -e succeeds"
        sed 's/^/       | /' "$TMP/rpm-erase.log"
    fi
    check "rpm -e: /usr/bin/otpgate is gone" test ! -e /usr/bin/otpgate
    check "rpm -e: unit is gone" test ! -e /usr/lib/systemd/system/otpgate.service
    if command -v systemctl >/dev/null 2>&1; then
        check "rpm %preun: unit disabled" test ! -L /etc/systemd/system/multi-user.target.wants/otpgate.service
    fi
    check "rpm -e: data in /var/lib/otpgate kept" sh -c "[ -n \"\$(find /var/lib/otpgate -mindepth 1 -maxdepth 1 ! -name '.*')\" ]"
    check "rpm -e: modified config saved as .rpmsave" test -f /etc/otpgate/config.toml.rpmsave
    rm -rf /var/lib/otpgate /etc/otpgate
else
    skip "rpm install round (no .rpm given)"
fi

# --- optional: the same under a real systemd ----------------------------------
if [ "${OTPGATE_TEST_NSPAWN:-0}" = 1 ]; then
    section "under a real systemd (systemd-nspawn; OTPGATE_TEST_NSPAWN=1)"
    if bash "$ROOT/packaging/test-nspawn.sh" "$DEB" ${RPM:+"$RPM"}; then
        ok "packaging/test-nspawn.sh"
    else
        bad "packaging/test-nspawn.sh"
    fi
fi

echo
if [ "$SKIP" -gt 0 ]; then
    echo "packaging: $PASS passed, $FAIL failed, $SKIP skipped"
else
    echo "packaging: $PASS passed, $FAIL failed"
fi
[ "$FAIL" -eq 0 ]
