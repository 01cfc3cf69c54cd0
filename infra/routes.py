"""Gives a deployed stack's HTTP API the routes and JWT authorizer that its template declares,
where the emulator did not (see shared/EMULATOR.md and infra/local.sh).

The emulator ignores the OpenAPI body that SAM generates for an AWS::Serverless::HttpApi, so
the API comes up with no routes and no authorizer. This reads that body from the stack's
*processed* template (SAM's translation, as CloudFormation holds it): each operation's
integration and `security`, and the `securitySchemes` that define the authorizer. So what
the emulator enforces is what template.yaml says: delete `Auth` from it and the routes are
created open, and the stack tests fail.

    python infra/routes.py STACK_NAME     # needs AWS_ENDPOINT_URL and credentials in the environment

Does nothing when the API already has routes (a LocalStack that reads the body itself).
"""
import json
import re
import sys

import boto3

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method"}


class Stack:
    """Resolves the intrinsic functions in the processed template to the deployed values."""

    def __init__(self, name: str):
        self.cfn = boto3.client("cloudformation")
        self.lambda_ = boto3.client("lambda")
        body = self.cfn.get_template(StackName=name, TemplateStage="Processed")["TemplateBody"]
        self.template = json.loads(body) if isinstance(body, str) else body
        description = self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        declared = self.template.get("Parameters", {})
        self.parameters = {}
        for p in description.get("Parameters", []):
            value = p.get("ResolvedValue", p["ParameterValue"])
            if declared.get(p["ParameterKey"], {}).get("Type") == "CommaDelimitedList":
                value = [v for v in value.split(",") if v]
            self.parameters[p["ParameterKey"]] = value
        for key, spec in declared.items():
            if key not in self.parameters and "Default" in spec:
                self.parameters[key] = spec["Default"]
        stack_id = description["StackId"]
        region, account = stack_id.split(":")[3], stack_id.split(":")[4]
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": name,
            "AWS::StackId": stack_id,
            "AWS::NoValue": None,
        }
        resources = self.cfn.describe_stack_resources(StackName=name)["StackResources"]
        self.physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}

    def ref(self, name: str):
        for source in (self.pseudo, self.parameters, self.physical):
            if name in source:
                return source[name]
        sys.exit(f"routes: cannot resolve Ref {name}")

    def get_att(self, logical: str, attribute: str):
        resource_type = self.template["Resources"][logical]["Type"]
        if resource_type == "AWS::Lambda::Function" and attribute == "Arn":
            configuration = self.lambda_.get_function(FunctionName=self.physical[logical])["Configuration"]
            return configuration["FunctionArn"]
        sys.exit(f"routes: cannot resolve GetAtt {logical}.{attribute}")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        (key, arg), = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical, attribute)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

            def substitute(match):
                name = match.group(1)
                if name in variables:
                    return str(variables[name])
                if "." in name and not name.startswith("AWS::"):
                    return str(self.get_att(*name.split(".", 1)))
                return str(self.ref(name))

            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(arg))
        if key == "Fn::Or":
            return any(self.resolve(arg))
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(str(p) for p in self.resolve(parts))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            separator, text = self.resolve(arg)
            return text.split(separator)
        return {key: self.resolve(arg)}


def main(stack_name: str) -> None:
    stack = Stack(stack_name)
    apis = [
        (logical, resource["Properties"]["Body"])
        for logical, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::ApiGatewayV2::Api" and "Body" in resource.get("Properties", {})
    ]
    apigw = boto3.client("apigatewayv2")
    for logical, body in apis:
        api_id = stack.physical[logical]
        if apigw.get_routes(ApiId=api_id)["Items"]:
            continue
        authorizers = {}
        schemes = body.get("components", {}).get("securitySchemes", {})
        for name, scheme in schemes.items():
            spec = scheme.get("x-amazon-apigateway-authorizer", {})
            if spec.get("type") != "jwt":
                sys.exit(f"routes: authorizer {name} is not a JWT authorizer; add it here")
            jwt = stack.resolve(spec["jwtConfiguration"])
            sources = spec["identitySource"]
            authorizers[name] = apigw.create_authorizer(
                ApiId=api_id,
                Name=name,
                AuthorizerType="JWT",
                IdentitySource=sources if isinstance(sources, list) else [sources],
                JwtConfiguration={"Issuer": jwt["issuer"], "Audience": jwt.get("audience") or []},
            )["AuthorizerId"]
        for path, operations in body.get("paths", {}).items():
            for method, operation in operations.items():
                if method not in METHODS:
                    continue
                uri = stack.resolve(operation["x-amazon-apigateway-integration"]["uri"])
                function_arn = re.search(r"functions/(.+)/invocations", uri).group(1)
                integration = apigw.create_integration(
                    ApiId=api_id,
                    IntegrationType="AWS_PROXY",
                    IntegrationUri=function_arn,
                    PayloadFormatVersion="2.0",
                )["IntegrationId"]
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                key = "$default" if operation.get("isDefaultRoute") or path == "$default" else f"{verb} {path}"
                route = {"ApiId": api_id, "RouteKey": key, "Target": f"integrations/{integration}"}
                for requirement in operation.get("security", body.get("security", [])):
                    for scheme, scopes in requirement.items():
                        if scheme == "NONE":
                            continue
                        route.update(AuthorizationType="JWT", AuthorizerId=authorizers[scheme])
                        if scopes:
                            route["AuthorizationScopes"] = scopes
                apigw.create_route(**route)
                print(key, route.get("AuthorizationScopes", route.get("AuthorizationType", "NONE")))


if __name__ == "__main__":
    main(sys.argv[1])
