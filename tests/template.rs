//! Checks on template.yaml that can fail: the properties the pipeline's promises rest on.
//! `cfn-lint` and `sam validate --lint` (infra/test.sh) check that it is valid; these check
//! that it is right.

use serde_norway::Value;

fn template() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]
}

/// A property's value, with `!Ref Parameter` resolved to the parameter's default.
fn resolved(template: &Value, value: &Value) -> Value {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!Ref" => {
            let parameter = tagged.value.as_str().unwrap();
            template["Parameters"][parameter]["Default"].clone()
        }
        other => other.clone(),
    }
}

fn number(template: &Value, value: &Value) -> u64 {
    resolved(template, value)
        .as_u64()
        .unwrap_or_else(|| panic!("not a number: {value:?}"))
}

fn get_att(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!GetAtt" => {
            tagged.value.as_str().unwrap().to_owned()
        }
        other => panic!("not a !GetAtt: {other:?}"),
    }
}

fn functions(template: &Value) -> Vec<(&str, &Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| (name.as_str().unwrap(), r))
        .collect()
}

#[test]
fn the_queue_redrives_to_the_dead_letter_queue_after_five_receives() {
    let t = template();
    let redrive = &resource(&t, "MessagesQueue")["Properties"]["RedrivePolicy"];
    assert_eq!(
        get_att(&redrive["deadLetterTargetArn"]),
        "DeadLetterQueue.Arn"
    );
    assert_eq!(number(&t, &redrive["maxReceiveCount"]), 5);
    let dlq_retention = number(
        &t,
        &resource(&t, "DeadLetterQueue")["Properties"]["MessageRetentionPeriod"],
    );
    let queue_retention = number(
        &t,
        &resource(&t, "MessagesQueue")["Properties"]["MessageRetentionPeriod"],
    );
    assert_eq!(dlq_retention, 14 * 24 * 3600);
    assert!(
        dlq_retention > queue_retention,
        "a message's age counts from its first send"
    );
}

#[test]
fn the_visibility_timeout_is_at_least_six_times_the_consumer_timeout() {
    let t = template();
    let visibility = number(
        &t,
        &resource(&t, "MessagesQueue")["Properties"]["VisibilityTimeout"],
    );
    let timeout = number(
        &t,
        &resource(&t, "ConsumerFunction")["Properties"]["Timeout"],
    );
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} s, consumer timeout {timeout} s"
    );
}

#[test]
fn the_consumer_reports_batch_item_failures() {
    let t = template();
    let event = &resource(&t, "ConsumerFunction")["Properties"]["Events"]["Queue"];
    assert_eq!(event["Type"], "SQS");
    assert_eq!(get_att(&event["Properties"]["Queue"]), "MessagesQueue.Arn");
    let types = event["Properties"]["FunctionResponseTypes"]
        .as_sequence()
        .unwrap();
    assert!(types.iter().any(|v| v == "ReportBatchItemFailures"));
}

#[test]
fn no_iam_statement_grants_a_wildcard_action_or_resource() {
    let t = template();
    let mut statements = 0;
    for (name, function) in functions(&t) {
        for policy in function["Properties"]["Policies"].as_sequence().unwrap() {
            for statement in policy["Statement"].as_sequence().unwrap() {
                statements += 1;
                let actions: Vec<&str> = match &statement["Action"] {
                    Value::String(action) => vec![action.as_str()],
                    Value::Sequence(actions) => {
                        actions.iter().map(|a| a.as_str().unwrap()).collect()
                    }
                    other => panic!("{name}: unexpected Action {other:?}"),
                };
                assert!(
                    actions.iter().all(|a| !a.contains('*')),
                    "{name}: {actions:?}"
                );
                assert!(
                    !matches!(&statement["Resource"], Value::String(r) if r.contains('*')),
                    "{name}"
                );
                get_att(&statement["Resource"]);
            }
        }
    }
    assert_eq!(statements, 3, "one statement per function");
}

#[test]
fn queues_and_table_are_encrypted_at_rest() {
    let t = template();
    for queue in ["MessagesQueue", "DeadLetterQueue"] {
        assert_eq!(
            resource(&t, queue)["Properties"]["SqsManagedSseEnabled"],
            true,
            "{queue}"
        );
    }
    let table = &resource(&t, "MessagesTable")["Properties"];
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(resource(&t, "MessagesTable")["DeletionPolicy"], "Retain");
}

#[test]
fn the_http_api_uses_the_default_stage_and_routes_every_path() {
    let t = template();
    let api = &resource(&t, "MessagesApi");
    assert_eq!(api["Type"], "AWS::Serverless::HttpApi");
    // SAM's HttpApi deploys the `$default` stage unless StageName says otherwise.
    assert!(
        matches!(&api["Properties"]["StageName"], Value::Null)
            || api["Properties"]["StageName"] == "$default"
    );
    let mut routes: Vec<String> = functions(&t)
        .iter()
        .flat_map(|(name, f)| {
            f["Properties"]["Events"]
                .as_mapping()
                .unwrap()
                .values()
                .filter(|e| e["Type"] == "HttpApi")
                .map(move |e| {
                    format!(
                        "{} {} -> {name}",
                        e["Properties"]["Method"].as_str().unwrap(),
                        e["Properties"]["Path"].as_str().unwrap()
                    )
                })
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "ANY $default -> ListFunction",
            "GET /messages -> ListFunction",
            "GET /messages/{id} -> ListFunction",
            "GET /openapi.json -> ListFunction",
            "POST /add_message -> EnqueueFunction",
            "POST /messages -> EnqueueFunction",
        ]
    );
    // Every operation the OpenAPI document describes has its route.
    let document: serde_json::Value = serde_json::from_str(message_pipeline::api::OPENAPI).unwrap();
    let mut documented: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    documented.sort();
    let routed: Vec<String> = routes
        .iter()
        .filter_map(|r| r.split(" -> ").next())
        .filter(|r| !r.contains("$default"))
        .map(str::to_owned)
        .collect();
    assert_eq!(documented, routed);
}

#[test]
fn every_function_is_a_workspace_crate_built_by_cargo_lambda_for_arm64() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    // One CA bundle, AL2023's, named so that init reads it alone (BENCHMARKS.md).
    assert_eq!(
        globals["Environment"]["Variables"]["SSL_CERT_FILE"],
        "/etc/pki/tls/certs/ca-bundle.crt"
    );
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    for (name, function) in functions(&t) {
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}"
        );
        let code_uri = function["Properties"]["CodeUri"].as_str().unwrap();
        assert!(
            manifest.contains(&format!("\"{code_uri}\"")),
            "{name}: {code_uri} is not a workspace member"
        );
    }
}

#[test]
fn the_outputs_a_deployer_needs_are_there() {
    let t = template();
    for output in ["ApiUrl", "QueueUrl", "DeadLetterQueueUrl", "TableName"] {
        assert!(t["Outputs"][output]["Value"] != Value::Null, "{output}");
    }
}

#[test]
fn the_dead_letter_queue_is_alarmed() {
    let t = template();
    let alarm = &resource(&t, "DeadLetterQueueNotEmptyAlarm")["Properties"];
    assert_eq!(alarm["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert_eq!(
        get_att(&alarm["Dimensions"][0]["Value"]),
        "DeadLetterQueue.QueueName"
    );
}
