#!/usr/bin/env bash
# Regenerates the console's screenshots in docs/console/: every page (sign-in, overview empty and
# with instances, create, the created page that shows the password once, instances, one
# instance with its actions and backups, the create form filled in for a restore, operations,
# one operation) at 1280 and 390 px wide, as NAME-WIDTH.png. It runs the
# page test of toygres-server/tests/console.rs (a real `toygres serve` with tokens, two real
# instances, Debian's headless Chromium) with TOYGRES_SCREENSHOTS_DIR set; the same test runs in
# `cargo test --workspace` without writing files.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/console-screenshots.sh [-h]

Needs: chromium and chromium-driver (Debian: apt-get install -y chromium chromium-driver), the
PostgreSQL server binaries, and a Rust toolchain. Writes docs/console/*.png; look at them before
committing.
USAGE
}
[ "${1:-}" = "-h" ] && { usage; exit 0; }
[ $# -eq 0 ] || { usage >&2; exit 2; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/docs/console"
mkdir -p "$OUT"
rm -f "$OUT"/*.png
cd "$ROOT"
TOYGRES_SCREENSHOTS_DIR="$OUT" cargo test --workspace --test console -- every_page_at_both_widths_with_its_headers --exact --nocapture
ls -1 "$OUT"/*.png
