#!/usr/bin/env bash
# The template scanned by the field's own tools, offline: checkov on template.yaml (every
# finding fixed, or skipped in the resource's Metadata with its reason), then parliament on
# each IAM role's policies as SAM translates them (infra/translate.py: the policies that are
# deployed, SAM's additions included). Any finding fails the run.
#
#   infra/scan-template.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scan="$(infra/tools.sh scan)"
cli="$(infra/tools.sh cli)"

# --skip-download: checkov asks Prisma Cloud for guidelines otherwise; nothing leaves here.
"$scan/checkov" --file template.yaml --framework cloudformation --skip-download --quiet --compact

translated=$(mktemp)
trap 'rm -f "$translated"' EXIT
"$cli/python" infra/translate.py template.yaml >"$translated"
"$scan/python" - "$translated" <<'EOF'
"""Each role's inline policies through parliament; prints every finding and fails on any.
A policy names its resources with Fn::GetAtt: each becomes the ARN that resource type has
(in a placeholder account), so parliament can check each action against its resource type."""
import json
import sys

from parliament import analyze_policy_string

template = json.load(open(sys.argv[1]))
ARN_OF = {
    "AWS::SQS::Queue": "arn:aws:sqs:us-east-1:123456789012:{}",
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
    "AWS::Logs::LogGroup": "arn:aws:logs:us-east-1:123456789012:log-group:{}:*",
}


def resolved(node):
    if isinstance(node, list):
        return [resolved(item) for item in node]
    if not isinstance(node, dict):
        return node
    if list(node) == ["Fn::GetAtt"] and node["Fn::GetAtt"][1] == "Arn":
        logical_id = node["Fn::GetAtt"][0]
        return ARN_OF[template["Resources"][logical_id]["Type"]].format(logical_id)
    if any(key.startswith("Fn::") or key == "Ref" for key in node):
        sys.exit(f"parliament: cannot resolve {node} for the scan; teach scan-template.sh")
    return {key: resolved(value) for key, value in node.items()}


findings = 0
roles = 0
for name, resource in sorted(template["Resources"].items()):
    if resource["Type"] != "AWS::IAM::Role":
        continue
    roles += 1
    for policy in resource["Properties"].get("Policies", []):
        document = json.dumps(resolved(policy["PolicyDocument"]))
        for finding in analyze_policy_string(document).findings:
            findings += 1
            print(f"parliament: {name} {policy['PolicyName']}: {finding.issue} "
                  f"{finding.detail} {finding.location}")
print(f"parliament: {roles} roles, {findings} findings")
sys.exit(1 if findings or not roles else 0)
EOF
