#!/usr/bin/env bash
# The supply chain: cargo-deny (advisories, bans, licenses, sources; policy in deny.toml).
# The RustSec advisory database comes from, in order:
#   ADVISORY_DB=<dir>        a snapshot you name (it must exist);
#   ../shared/advisory-db    the snapshot beside the checkout, where there is one (our CI);
#   GitHub                   cargo-deny fetches it, into ~/.cache/message-pipeline/advisory-dbs.
# Offline with no snapshot, bans, licenses and sources still run, and the run says loudly
# that advisories were not checked and how to check them. A snapshot's date is printed, so
# that a stale database is visible.
#
#   infra/supply-chain.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
deny="$(infra/tools.sh supply-chain)/cargo-deny"
# Every crate of every target, so that cargo-deny can run without the network.
cargo fetch --locked --quiet
# Offline: crates are fetched above, the database is laid out or fetched below.
check() {
  "$deny" --offline --locked --all-features --color never check --show-stats --hide-inclusion-graph "$@"
}

if [ -n "${ADVISORY_DB:-}" ]; then
  snapshot="$ADVISORY_DB"
  [ -d "$snapshot/crates" ] || { echo "supply-chain: ADVISORY_DB=$snapshot holds no advisory database (no crates/ in it)" >&2; exit 1; }
elif [ -d "$root/../shared/advisory-db/crates" ]; then
  snapshot="$root/../shared/advisory-db"
else
  dbs="${XDG_CACHE_HOME:-$HOME/.cache}/message-pipeline/advisory-dbs"
  mkdir -p "$dbs"
  if ADVISORY_DB_PATH="$dbs" timeout 300 "$deny" --color never fetch db >"$dbs/fetch.log" 2>&1; then
    echo "supply-chain: RustSec advisory database fetched from GitHub into $dbs"
    ADVISORY_DB_PATH="$dbs" check advisories bans licenses sources
    exit 0
  fi
  cat >&2 <<EOT
supply-chain: ******************************************************************
supply-chain: ADVISORIES NOT CHECKED: no advisory database snapshot (ADVISORY_DB, or
supply-chain: ../shared/advisory-db) and GitHub cannot be reached:
supply-chain:   $(grep -m1 -iE 'fatal|error' "$dbs/fetch.log" || tail -1 "$dbs/fetch.log")
supply-chain: Checking bans, licenses and sources only. To check advisories, run this
supply-chain: again where github.com answers, or with ADVISORY_DB=<a clone of
supply-chain: https://github.com/RustSec/advisory-db>.
supply-chain: ******************************************************************
EOT
  ADVISORY_DB_PATH="$dbs" check bans licenses sources
  exit 0
fi
# cargo-deny reads the database as a git clone, in a folder named for the default URL's hash.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clone="$work/dbs/advisory-db-3157b0e258782691"
mkdir -p "$clone"
cp -R "$snapshot/." "$clone/"
# CI's copy of shared/ has no write bits; the clone needs them (git init, and rm at exit).
chmod -R u+w "$clone"
# The date the snapshot's note gives; without one, the newest advisory file's.
date=$(sed -n 's/.*dated \([0-9-]*\).*/\1/p' "$snapshot.SNAPSHOT.md" 2>/dev/null | head -1)
date="${date:-$(find "$snapshot/crates" -name '*.md' -printf '%TY-%Tm-%Td\n' | sort | tail -1)}"
(
  cd "$clone"
  git init --quiet
  git add -A
  # Committed at the snapshot's date: cargo-deny's staleness check then measures the data.
  GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z" \
    git -c user.name=snapshot -c user.email=snapshot@localhost commit --quiet -m "RustSec snapshot $date"
)
echo "supply-chain: RustSec advisory database snapshot of $date ($(find "$snapshot/crates" -name '*.md' | wc -l) advisories)"
ADVISORY_DB_PATH="$work/dbs" check advisories bans licenses sources
