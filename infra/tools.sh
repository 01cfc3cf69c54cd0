#!/usr/bin/env bash
# Installs the host tools (infra/requirements.txt) into one venv and prints its bin directory.
#
# The venv lives outside the clone (CI clones afresh every run) and is rebuilt only when
# requirements.txt changes, so a warm machine pays nothing and a fresh one about 30 s.
# Usage: PATH="$(infra/tools.sh):$PATH"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
requirements="$here/requirements.txt"
cache="${PIPELINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/message-pipeline}"
stamp_wanted=$(sha256sum "$requirements" | cut -c1-16)
venv="$cache/venv-$stamp_wanted"

if [ ! -x "$venv/bin/ministack" ] || [ ! -f "$venv/.complete" ]; then
  echo "tools: installing $(grep -cv '^#' "$requirements") packages into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  # uv resolves in seconds where pip backtracks for minutes (aws-sam-cli, botocore pins).
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'uv==0.9.30' >&2
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin"
