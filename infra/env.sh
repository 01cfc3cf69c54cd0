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
