#!/usr/bin/env bash
# The supply chain, checked offline: cargo-deny (advisories, bans, licenses, sources; policy
# in deny.toml) against the RustSec advisory database snapshot in shared/advisory-db, which
# it prints the date of, so that a stale database is visible.
#
#   infra/supply-chain.sh                       # ADVISORY_DB=<dir> to use another snapshot
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
snapshot="${ADVISORY_DB:-$root/../shared/advisory-db}"
[ -d "$snapshot/crates" ] || { echo "supply-chain: no advisory database at $snapshot" >&2; exit 1; }
deny="$(infra/tools.sh supply-chain)/cargo-deny"

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

# Every crate of every target, so that cargo-deny can run without the network.
cargo fetch --locked --quiet
ADVISORY_DB_PATH="$work/dbs" "$deny" --offline --locked --all-features --color never \
  check --show-stats --hide-inclusion-graph advisories bans licenses sources
