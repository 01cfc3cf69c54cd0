#!/usr/bin/env bash
# Compiles each tool set's requirements (infra/requirements/<set>.in: what we ask for) into
# a lock with every transitive pin and its hashes (<set>.txt), which infra/tools.sh installs
# with --require-hashes: a changed or substituted package fails the install.
#
#   infra/lock-requirements.sh          # after editing a .in file; commit both
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
uv="$("$here/tools.sh" uv)/uv"
for input in "$here"/requirements/*.in; do
  "$uv" pip compile --quiet --generate-hashes --python-version 3.11 \
    --custom-compile-command "infra/lock-requirements.sh" \
    --output-file "${input%.in}.txt" "$input"
done
