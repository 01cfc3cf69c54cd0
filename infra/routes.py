"""Prints the HTTP API routes that template.yaml declares, one `METHOD PATH FunctionLogicalId`
a line, so the local harness can add them where the emulator does not (see infra/local.sh).

Reads the template with cfn-lint's decoder, which understands the short intrinsic tags (!Ref).
"""
import sys

from cfnlint.decode import decode


def main(path: str) -> None:
    template, errors = decode(path)
    if errors:
        sys.exit(f"{path}: {errors}")
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "HttpApi":
                props = event["Properties"]
                print(props["Method"].upper(), props["Path"], name)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
