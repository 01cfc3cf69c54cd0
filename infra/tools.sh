#!/usr/bin/env bash
# Installs one set of host tools (infra/requirements/<set>.txt) into its own venv and prints
# the venv's bin directory. Sets: `emulator` (ministack), `cli` (cargo-lambda, sam, cfn-lint,
# aws), `api-fuzz` (schemathesis), `baseline` (the tutorial's stack, for benchmarks). One venv
# a set because ministack and the SAM CLI pin different botocore versions.
#
# The venvs live outside the clone (CI clones afresh every run) and are rebuilt only when
# their requirements change: a warm machine pays nothing, a fresh one about 20 s a set.
#   PATH="$(infra/tools.sh cli):$PATH"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
set_name="${1:?usage: $0 emulator|cli|api-fuzz|baseline}"
requirements="$here/requirements/$set_name.txt"
[ -f "$requirements" ] || { echo "tools: no such set: $set_name" >&2; exit 2; }
cache="${PIPELINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/message-pipeline}"
venv="$cache/$set_name-$(sha256sum "$requirements" | cut -c1-16)"

if [ ! -f "$venv/.complete" ]; then
  echo "tools: installing $set_name tools into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  # uv resolves in seconds where pip backtracks for minutes (aws-sam-cli's botocore pins).
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'uv==0.9.30' >&2
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin"
