"""Prints template.yaml as AWS SAM translates it for CloudFormation (JSON), offline: what is
deployed, policies and roles that SAM adds included. tests/template.rs checks least privilege
on this, not on the source template, where SAM's additions cannot be seen.

    python infra/translate.py [template.yaml]
"""
import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template names no managed policy by name, so none has to be looked up in IAM."""

    def load(self):
        return {}


def main(path: str) -> None:
    # The translation names the region in a few ARNs; any region gives the same policies.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template, errors = decode(path)
    if errors:
        sys.exit(f"{path}: {errors}")
    template = json.loads(json.dumps(template))
    # As `sam package` would leave it: code in S3, not in a local folder.
    for resource in template["Resources"].values():
        code_uri = resource.get("Properties", {}).get("CodeUri")
        if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
            resource["Properties"]["CodeUri"] = f"s3://packaged/{code_uri}"
    translated = transform(template, {}, NoManagedPolicies())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
