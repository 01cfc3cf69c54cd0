# Sourced by the scripts in infra/: the environment that points the AWS SDKs and CLI at the
# local emulator. Real LocalStack on 127.0.0.1:4566 takes the same values.
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:${EMULATOR_PORT:-4566}}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
# Emulators accept any credentials; these keep the SDK from searching for real ones.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
# No instance-metadata lookups on a laptop or CI machine.
export AWS_EC2_METADATA_DISABLED=true
# The SAM CLI reports telemetry to AWS unless told not to; nothing leaves this machine.
export SAM_CLI_TELEMETRY=0

# For scripts that need the emulator for a while: `emulator_acquire` starts it unless one
# already answers; `emulator_release` (from the script's exit trap) stops it only if this
# script started it, so a user's running emulator survives.
_infra_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
emulator_acquire() {
  if ! "$_infra_dir/emulator.sh" status >/dev/null 2>&1; then
    "$_infra_dir/emulator.sh" start >&2
    _emulator_started=yes
  fi
}
emulator_release() {
  if [ -n "${_emulator_started:-}" ]; then "$_infra_dir/emulator.sh" stop >&2; fi
}
