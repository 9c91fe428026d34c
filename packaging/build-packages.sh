#!/usr/bin/env bash
# Build the otpgate Debian (.deb) and RPM (.rpm) packages.
#
#   bash packaging/build-packages.sh
#
# Steps: install cargo-deb and cargo-generate-rpm if missing, build the
# release binary, generate the man page and the bash/zsh/fish completions
# from clap (by running the freshly built binary) into target/packaging/,
# then build target/debian/otpgate_*.deb and target/generate-rpm/otpgate-*.rpm
# from the [package.metadata.deb] / [package.metadata.generate-rpm] sections
# of Cargo.toml. Prints the package paths, their sizes, the installed size
# and the elapsed time.
#
# Environment: CARGO_TARGET_DIR is honoured for the cargo build. The
# packages and the generated files always go under ./target of the crate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

START=$(date +%s)
log() { printf '==> %s\n' "$*"; }
die() { printf 'build-packages: error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found"
if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb"
    cargo install --locked cargo-deb
fi
if ! cargo generate-rpm --version >/dev/null 2>&1; then
    log "installing cargo-generate-rpm"
    cargo install --locked cargo-generate-rpm
fi
log "$(cargo deb --version 2>/dev/null | head -n1), $(cargo generate-rpm --version 2>/dev/null | head -n1)"

for f in packaging/config.toml systemd/otpgate.service README.md LICENSE; do
    [ -f "$f" ] || die "missing $f"
done

# --- release build -----------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/otpgate"

log "cargo build --release"
BUILD_START=$(date +%s)
cargo build --release --bin otpgate
BUILD_SECS=$(( $(date +%s) - BUILD_START ))
[ -x "$BIN" ] || die "$BIN was not built"

# --- generated assets: man page and completions --------------------------------
GEN="$ROOT/target/packaging"
log "generating man page and completions into ${GEN#"$ROOT"/}"
rm -rf "$GEN"
mkdir -p "$GEN/completions"
"$BIN" completions bash > "$GEN/completions/otpgate.bash"
"$BIN" completions zsh  > "$GEN/completions/_otpgate"
"$BIN" completions fish > "$GEN/completions/otpgate.fish"
"$BIN" man > "$GEN/otpgate.1"
for f in "$GEN/completions/otpgate.bash" "$GEN/completions/_otpgate" \
         "$GEN/completions/otpgate.fish" "$GEN/otpgate.1"; do
    [ -s "$f" ] || die "generated file is empty: $f"
done
grep -q '^\.TH' "$GEN/otpgate.1" || die "man page has no .TH header"
gzip -9n "$GEN/otpgate.1"   # -n: no name/timestamp, reproducible

# --- packages ------------------------------------------------------------------
PKG_START=$(date +%s)
mkdir -p target/debian target/generate-rpm
rm -f target/debian/otpgate_*.deb target/generate-rpm/otpgate-*.rpm

log "cargo deb"
cargo deb --no-build --output target/debian/
log "cargo generate-rpm"
cargo generate-rpm --output target/generate-rpm/
PKG_SECS=$(( $(date +%s) - PKG_START ))

DEB=$(ls target/debian/otpgate_*.deb 2>/dev/null | head -n1)
RPM=$(ls target/generate-rpm/otpgate-*.rpm 2>/dev/null | head -n1)
[ -n "$DEB" ] && [ -f "$DEB" ] || die "no .deb was produced"
[ -n "$RPM" ] && [ -f "$RPM" ] || die "no .rpm was produced"

human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 bytes"; }

deb_size=$(stat -c %s "$DEB")
rpm_size=$(stat -c %s "$RPM")
deb_inst_kib=""
if command -v dpkg-deb >/dev/null 2>&1; then
    deb_inst_kib=$(dpkg-deb -f "$DEB" Installed-Size)
fi
rpm_inst=""
if command -v rpm >/dev/null 2>&1; then
    rpm_inst=$(rpm -qp --nosignature --nodigest --qf '%{SIZE}' "$RPM" 2>/dev/null || true)
fi
bin_size=$(stat -c %s "$BIN")
TOTAL_SECS=$(( $(date +%s) - START ))

echo
echo "packages:"
echo "  deb: $ROOT/$DEB ($(human "$deb_size"))"
echo "  rpm: $ROOT/$RPM ($(human "$rpm_size"))"
echo "installed size:"
echo "  binary /usr/bin/otpgate: $(human "$bin_size")"
if [ -n "$deb_inst_kib" ]; then
    echo "  deb Installed-Size: ${deb_inst_kib} KiB"
fi
if [ -n "$rpm_inst" ]; then
    echo "  rpm SIZE: $(human "$rpm_inst")"
fi
echo "elapsed:"
echo "  cargo build --release: ${BUILD_SECS}s"
echo "  packaging (deb + rpm): ${PKG_SECS}s"
echo "  total: ${TOTAL_SECS}s"
