//! Checks on template.yaml that can fail: the properties the pipeline's promises rest on.
//! `cfn-lint` and `sam validate --lint` (infra/test.sh) check that it is valid; these check
//! that it is right.

use std::process::Command;
use std::sync::OnceLock;

use pipeline::api::{Access, ROUTES};
use serde_json::Value as Json;
use serde_norway::Value;

fn template() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]
}

/// A property's value, with `!Ref Parameter` resolved to the parameter's default and
/// `!If [Condition, a, b]` to the branch the defaults choose.
fn resolved(template: &Value, value: &Value) -> Value {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!Ref" => {
            let parameter = tagged.value.as_str().unwrap();
            template["Parameters"][parameter]["Default"].clone()
        }
        Value::Tagged(tagged) if tagged.tag == "!If" => {
            let [condition, then, otherwise] = tagged.value.as_sequence().unwrap().as_slice()
            else {
                panic!("!If takes three items: {tagged:?}")
            };
            let holds = condition_holds(template, condition.as_str().unwrap());
            resolved(template, if holds { then } else { otherwise })
        }
        other => other.clone(),
    }
}

/// A condition of the form `!Equals [!Ref Parameter, value]`, under the defaults.
fn condition_holds(template: &Value, name: &str) -> bool {
    let Value::Tagged(equals) = &template["Conditions"][name] else {
        panic!("condition {name} is not an !Equals")
    };
    assert_eq!(equals.tag, "!Equals", "{name}");
    let [left, right] = equals.value.as_sequence().unwrap().as_slice() else {
        panic!("!Equals takes two items")
    };
    resolved(template, left) == resolved(template, right)
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
fn the_queue_redrives_to_the_dead_letter_queue_after_nine_receives() {
    let t = template();
    let redrive = &resource(&t, "MessagesQueue")["Properties"]["RedrivePolicy"];
    assert_eq!(
        get_att(&redrive["deadLetterTargetArn"]),
        "DeadLetterQueue.Arn"
    );
    assert_eq!(number(&t, &redrive["maxReceiveCount"]), 9);
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
fn the_visibility_timeout_is_at_least_six_times_the_consumer_timeout_plus_the_batching_window() {
    let t = template();
    let visibility = number(
        &t,
        &resource(&t, "MessagesQueue")["Properties"]["VisibilityTimeout"],
    );
    let consumer = &resource(&t, "ConsumerFunction")["Properties"];
    let timeout = number(&t, &consumer["Timeout"]);
    let window = number(
        &t,
        &consumer["Events"]["Queue"]["Properties"]["MaximumBatchingWindowInSeconds"],
    );
    assert!(
        visibility >= 6 * timeout + window,
        "visibility {visibility} s, consumer timeout {timeout} s, window {window} s"
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
            "DELETE /dead-letters -> OperateFunction",
            "DELETE /dead-letters/{id} -> OperateFunction",
            "DELETE /messages/{id} -> OperateFunction",
            "GET /dashboard -> OperateFunction",
            "GET /dashboard/{file} -> OperateFunction",
            "GET /dead-letters -> OperateFunction",
            "GET /jobs/{id} -> ListFunction",
            "GET /messages -> ListFunction",
            "GET /messages/{id} -> ListFunction",
            "GET /openapi.json -> ListFunction",
            "GET /stats -> OperateFunction",
            "GET /stats/history -> OperateFunction",
            "POST /add_message -> EnqueueFunction",
            "POST /dead-letters/requeue-all -> OperateFunction",
            "POST /dead-letters/{id}/requeue -> OperateFunction",
            "POST /messages -> EnqueueFunction",
            "POST /messages/batch -> EnqueueFunction",
        ]
    );
    // Every operation the OpenAPI document describes has its route.
    let document: serde_json::Value = serde_json::from_str(pipeline::api::OPENAPI).unwrap();
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
fn every_alarm_notifies_a_topic_and_the_backlog_alarm_fires_when_the_readme_says() {
    let resources = &translated()["Resources"];
    let alarms = translated_resources("AWS::CloudWatch::Alarm");
    let mut names: Vec<&str> = alarms.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "Api5xxCountAlarm",
            "Api5xxRateAlarm",
            "ConsumerErrorsAlarm",
            "ConsumerThrottlesAlarm",
            "DeadLetterQueueNotEmptyAlarm",
            "QueueBacklogAgeAlarm"
        ]
    );
    for (name, alarm) in alarms {
        let actions = &alarm["Properties"]["AlarmActions"];
        assert_eq!(
            actions.as_array().map(Vec::len),
            Some(1),
            "{name} notifies nobody"
        );
        assert!(!actions[0]["Fn::If"].is_null(), "{name}: {actions}");
    }
    assert_eq!(resources["AlarmTopic"]["Type"], "AWS::SNS::Topic");
    // The README: "when the oldest queued message is over five minutes old".
    let backlog = &resources["QueueBacklogAgeAlarm"]["Properties"];
    let (threshold, period, periods) = (
        backlog["Threshold"].as_u64().unwrap(),
        backlog["Period"].as_u64().unwrap(),
        backlog["EvaluationPeriods"].as_u64().unwrap(),
    );
    assert_eq!(threshold, 300);
    assert!(
        threshold + period * (periods - 1) <= 300 + 60,
        "fires after {} s",
        threshold + period * periods
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("oldest queued message is over five minutes old"));
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

/// template.yaml as SAM translates it for CloudFormation (infra/translate.py, with the
/// translator from the CLI tools' venv): what is deployed, roles and policies SAM adds included.
fn translated() -> &'static Json {
    static TRANSLATED: OnceLock<Json> = OnceLock::new();
    TRANSLATED.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let venv = Command::new("bash")
            .arg(format!("{root}/infra/tools.sh"))
            .arg("cli")
            .output()
            .unwrap();
        assert!(
            venv.status.success(),
            "{}",
            String::from_utf8_lossy(&venv.stderr)
        );
        let python = format!("{}/python", String::from_utf8(venv.stdout).unwrap().trim());
        let output = Command::new(python)
            .arg(format!("{root}/infra/translate.py"))
            .arg(format!("{root}/template.yaml"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    })
}

fn translated_resources(kind: &str) -> Vec<(&'static str, &'static Json)> {
    translated()["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(name, r)| (name.as_str(), r))
        .collect()
}

fn as_list(value: &Json) -> Vec<&Json> {
    match value {
        Json::Array(items) => items.iter().collect(),
        Json::Null => vec![],
        one => vec![one],
    }
}

/// Actions whose only resource can be "*" (the service authorization reference lists no
/// resource type for them): a read, and X-Ray's writes of the function's own trace segments.
const ACTIONS_WITHOUT_RESOURCE_TYPES: [&str; 3] = [
    "cloudwatch:GetMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
];

/// Managed policies a role may carry: Lambda's basic execution role (its own log streams),
/// and X-Ray's write-only policy, which SAM adds for `Tracing: Active` (segments and sampling
/// rules, nothing readable).
const MANAGED_POLICY_ALLOWLIST: [&str; 2] = [
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
];

#[test]
fn no_deployed_role_grants_a_wildcard_action_or_resource_or_a_managed_policy_outside_the_allowlist()
{
    let roles = translated_resources("AWS::IAM::Role");
    let mut statements = 0;
    for &(name, role) in &roles {
        for arn in as_list(&role["Properties"]["ManagedPolicyArns"]) {
            let arn = arn.as_str().unwrap_or_else(|| panic!("{name}: {arn}"));
            assert!(
                MANAGED_POLICY_ALLOWLIST.contains(&arn),
                "{name} carries the managed policy {arn}"
            );
        }
        for policy in as_list(&role["Properties"]["Policies"]) {
            for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                statements += 1;
                assert_eq!(statement["Effect"], "Allow", "{name}");
                for action in as_list(&statement["Action"]) {
                    let action = action.as_str().unwrap();
                    assert!(!action.contains('*'), "{name}: action {action}");
                }
                let actions: Vec<&str> = as_list(&statement["Action"])
                    .into_iter()
                    .filter_map(Json::as_str)
                    .collect();
                for resource in as_list(&statement["Resource"]) {
                    // A literal resource is a wildcard or an account-wide ARN; each must
                    // name one of the stack's own resources, but for the read-only actions
                    // that AWS defines without resource types.
                    let unscoped = actions
                        .iter()
                        .all(|a| ACTIONS_WITHOUT_RESOURCE_TYPES.contains(a));
                    assert!(
                        resource.is_object() || (unscoped && resource == "*"),
                        "{name}: resource {resource}"
                    );
                }
            }
        }
    }
    assert!(statements >= 5, "{statements} statements");
    assert_eq!(roles.len(), 4, "one role per function");
}

#[test]
fn the_consumer_may_only_receive_delete_and_back_off_on_its_queue_send_to_its_dead_letter_queue_put_in_its_table_and_write_its_logs_and_traces(
) {
    let role = &translated()["Resources"]["ConsumerRole"]["Properties"];
    assert!(role["ManagedPolicyArns"].is_null(), "{role}");
    let statements: Vec<(Vec<&str>, &Json)> = as_list(&role["Policies"])
        .into_iter()
        .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
        .map(|s| {
            let actions = as_list(&s["Action"])
                .into_iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            (actions, &s["Resource"])
        })
        .collect();
    let get_att = |name: &str| serde_json::json!({ "Fn::GetAtt": [name, "Arn"] });
    assert_eq!(
        statements,
        [
            (
                vec![
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility"
                ],
                &get_att("MessagesQueue")
            ),
            (vec!["sqs:SendMessage"], &get_att("DeadLetterQueue")),
            (vec!["dynamodb:PutItem"], &get_att("MessagesTable")),
            (
                vec!["logs:CreateLogStream", "logs:PutLogEvents"],
                &get_att("ConsumerLogGroup")
            ),
            (
                vec!["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                &serde_json::json!("*")
            ),
        ]
    );
    let function = &translated()["Resources"]["ConsumerFunction"]["Properties"];
    assert_eq!(function["Role"], get_att("ConsumerRole"));
}

#[test]
fn the_enqueue_function_may_only_send_to_its_queue_and_keep_idempotency_keys() {
    let role = translated()["Resources"]["EnqueueFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap();
    let get_att = |name: &str| serde_json::json!({ "Fn::GetAtt": [name, "Arn"] });
    let granted: Vec<(Vec<String>, Json)> = statements_of(role)
        .into_iter()
        .map(|(actions, resource, _)| (actions, resource))
        .collect();
    let strings = |actions: &[&str]| actions.iter().map(|a| (*a).to_owned()).collect();
    assert_eq!(
        granted,
        [
            (strings(&["sqs:SendMessage"]), get_att("MessagesQueue")),
            (
                strings(&[
                    "dynamodb:PutItem",
                    "dynamodb:GetItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem"
                ]),
                get_att("IdempotencyTable")
            ),
        ]
    );
    let function = &translated()["Resources"]["EnqueueFunction"]["Properties"];
    let variables = &function["Environment"]["Variables"];
    assert_eq!(
        variables["IDEMPOTENCY_TABLE_NAME"],
        serde_json::json!({ "Ref": "IdempotencyTable" })
    );
    let keys = &translated()["Resources"]["IdempotencyTable"]["Properties"];
    assert_eq!(
        keys["TimeToLiveSpecification"]["AttributeName"],
        "expires_at"
    );
    assert_eq!(keys["SSESpecification"]["SSEEnabled"], true);
}

#[test]
fn the_fifo_option_makes_both_queues_fifo_and_drops_the_batching_window() {
    let t = template();
    assert_eq!(t["Conditions"]["IsFifo"], {
        let text = "!Equals [!Ref FifoQueue, \"true\"]";
        serde_norway::from_str::<Value>(text).unwrap()
    });
    for queue in ["MessagesQueue", "DeadLetterQueue"] {
        let properties = &resource(&t, queue)["Properties"];
        let fifo =
            serde_norway::from_str::<Value>("!If [IsFifo, true, !Ref AWS::NoValue]").unwrap();
        assert_eq!(properties["FifoQueue"], fifo, "{queue}");
        // A standard queue (the default) keeps CloudFormation's generated name.
        assert!(resolved(&t, &properties["QueueName"]).is_null(), "{queue}");
    }
    let mapping = &resource(&t, "ConsumerFunction")["Properties"]["Events"]["Queue"]["Properties"];
    let window = serde_norway::from_str::<Value>(
        "!If [IsFifo, !Ref AWS::NoValue, !Ref ConsumerBatchingWindowSeconds]",
    )
    .unwrap();
    assert_eq!(mapping["MaximumBatchingWindowInSeconds"], window);
}

/// Every statement of the roles of these functions, as (role, actions, resources, condition).
fn statements_of(role_name: &str) -> Vec<(Vec<String>, Json, Json)> {
    let role = &translated()["Resources"][role_name]["Properties"];
    as_list(&role["Policies"])
        .into_iter()
        .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
        .map(|s| {
            let actions = as_list(&s["Action"])
                .into_iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            (actions, s["Resource"].clone(), s["Condition"].clone())
        })
        .collect()
}

#[test]
fn only_the_operate_function_reads_the_dead_letter_queue_the_consumer_only_sends_to_it() {
    let resources = &translated()["Resources"];
    let role_of = |function: &str| {
        resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for function in ["EnqueueFunction", "ListFunction"] {
        let granted = serde_json::to_string(&statements_of(&role_of(function))).unwrap();
        assert!(
            !granted.contains("DeadLetterQueue"),
            "{function}: {granted}"
        );
    }
    // The consumer moves a record that can never be stored there itself: send, nothing else.
    let get_att = |name: &str| serde_json::json!({ "Fn::GetAtt": [name, "Arn"] });
    for (actions, resource, _) in statements_of(&role_of("ConsumerFunction")) {
        if resource == get_att("DeadLetterQueue") {
            assert_eq!(actions, ["sqs:SendMessage"]);
        }
    }
    let operate = statements_of(&role_of("OperateFunction"));
    let (mut writes_table, mut writes_tombstones) = (false, false);
    for (actions, resource, condition) in &operate {
        let on_dlq = resource == &get_att("DeadLetterQueue");
        for action in actions {
            match action.as_str() {
                // The only change to the queue: sending a requeued message.
                "sqs:SendMessage" => assert_eq!(resource, &get_att("MessagesQueue")),
                "sqs:ReceiveMessage"
                | "sqs:DeleteMessage"
                | "sqs:ChangeMessageVisibility"
                | "sqs:PurgeQueue"
                | "sqs:StartMessageMoveTask" => assert!(on_dlq, "{action}"),
                "sqs:GetQueueAttributes"
                | "dynamodb:DescribeTable"
                | "cloudwatch:GetMetricData" => {}
                "dynamodb:Query" | "dynamodb:GetItem" | "dynamodb:BatchWriteItem" => {
                    writes_table |= action == "dynamodb:BatchWriteItem";
                    assert_eq!(
                        condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
                        serde_json::json!(["dead"]),
                        "{action} reaches items other than the failure notes"
                    );
                }
                // DELETE /messages/{id}: a tombstone over a message, which holds no content.
                "dynamodb:PutItem" => {
                    writes_tombstones = true;
                    assert_eq!(
                        condition["ForAllValues:StringEquals"]["dynamodb:Attributes"],
                        serde_json::json!(["pk", "sk", "deleted_at", "expires_at"]),
                        "the operate function may write more than a tombstone"
                    );
                    assert_eq!(
                        condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
                        serde_json::json!(["shard#*"]),
                    );
                }
                "logs:CreateLogStream" | "logs:PutLogEvents" => {}
                other => panic!("the operate function may {other}"),
            }
        }
    }
    assert!(writes_table && writes_tombstones);
}

#[test]
fn the_default_retries_ride_out_an_hour_and_a_retried_message_outlives_its_backoffs_in_the_queue() {
    let t = template();
    let default = |name: &str| number(&t, &t["Parameters"][name]["Default"]);
    let policy =
        pipeline::domain::RetryPolicy::new(default("RetryBaseSeconds"), default("RetryMaxSeconds"))
            .unwrap();
    let receives = default("MaxReceiveCount") as u32;
    let ridden_out = policy.outage_ridden_out(receives).as_secs();
    assert!(ridden_out >= 3600, "a store outage of {ridden_out} s");
    // A message is dead-lettered by its last backoff, not expired by the queue's retention.
    let slowest = policy.slowest_dead_letter(receives).as_secs();
    assert!(slowest < default("QueueRetentionSeconds"), "{slowest} s");

    let resources = &translated()["Resources"];
    let consumer = &resources["ConsumerFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(consumer["RETRY_BASE_SECS"]["Ref"], "RetryBaseSeconds");
    assert_eq!(consumer["RETRY_MAX_SECS"]["Ref"], "RetryMaxSeconds");
    assert_eq!(consumer["QUEUE_URL"]["Ref"], "MessagesQueue");
    assert_eq!(consumer["DEAD_LETTER_QUEUE_URL"]["Ref"], "DeadLetterQueue");
}

#[test]
fn the_consumer_notes_last_failures_at_the_queues_receive_count_and_job_status_knows_retention() {
    let resources = &translated()["Resources"];
    let consumer = &resources["ConsumerFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(consumer["MAX_RECEIVE_COUNT"]["Ref"], "MaxReceiveCount");
    let list = &resources["ListFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        list["QUEUE_RETENTION_SECONDS"]["Ref"],
        "QueueRetentionSeconds"
    );
    let table = &resources["MessagesTable"]["Properties"]["TimeToLiveSpecification"];
    assert_eq!(table["AttributeName"], "expires_at");
    assert_eq!(
        resources["OperationsDashboard"]["Type"],
        "AWS::CloudWatch::Dashboard"
    );
}

/// The authorizer and scope of each deployed route, as `METHOD path -> scopes`.
fn deployed_route_security() -> Vec<(String, Json)> {
    let (_, api) = translated_resources("AWS::ApiGatewayV2::Api")[0];
    let body = &api["Properties"]["Body"];
    let mut routes = Vec::new();
    for (path, operations) in body["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let method = match method.as_str() {
                "x-amazon-apigateway-any-method" => "ANY".to_owned(),
                other => other.to_uppercase(),
            };
            routes.push((format!("{method} {path}"), operation["security"].clone()));
        }
    }
    routes.sort_by(|a, b| a.0.cmp(&b.0));
    routes
}

#[test]
fn every_deployed_route_needs_the_scope_of_the_route_table_and_the_rest_a_valid_token() {
    let deployed = deployed_route_security();
    let mut expected: Vec<(String, Json)> = ROUTES
        .iter()
        .map(|spec| {
            let security = match spec.access {
                Access::Public => serde_json::json!([{ "NONE": [] }]),
                Access::Authenticated => serde_json::json!([{ "MessagesAuthorizer": [] }]),
                Access::Scoped(scope) => {
                    serde_json::json!([{ "MessagesAuthorizer": [scope.name()] }])
                }
            };
            (format!("{} {}", spec.method, spec.path), security)
        })
        .collect();
    // The catch-all: any valid token, so a scanner without one invokes nothing.
    expected.push((
        "ANY $default".into(),
        serde_json::json!([{ "MessagesAuthorizer": [] }]),
    ));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(deployed, expected);

    let (_, api) = translated_resources("AWS::ApiGatewayV2::Api")[0];
    let authorizer = &api["Properties"]["Body"]["components"]["securitySchemes"]
        ["MessagesAuthorizer"]["x-amazon-apigateway-authorizer"];
    assert_eq!(authorizer["type"], "jwt");
    assert_eq!(
        authorizer["identitySource"],
        "$request.header.Authorization"
    );
}

#[test]
fn the_log_level_cannot_be_trace_which_logs_raw_events_with_content_and_tokens() {
    let t = template();
    let allowed: Vec<&str> = t["Parameters"]["LogLevel"]["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!allowed.is_empty());
    assert!(
        allowed
            .iter()
            .all(|level| !level.eq_ignore_ascii_case("trace")),
        "{allowed:?}"
    );
}

#[test]
fn every_function_and_the_api_log_to_a_group_with_retention() {
    let resources = &translated()["Resources"];
    for function in [
        "EnqueueFunction",
        "ConsumerFunction",
        "ListFunction",
        "OperateFunction",
    ] {
        let group = &resources[function]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"];
        let group = group
            .as_str()
            .unwrap_or_else(|| panic!("{function}: no log group"));
        assert!(
            !resources[group]["Properties"]["RetentionInDays"].is_null(),
            "{function}: {group} keeps logs forever"
        );
    }
    let stages = translated_resources("AWS::ApiGatewayV2::Stage");
    let access = &stages[0].1["Properties"]["AccessLogSettings"];
    let group = access["DestinationArn"]["Fn::GetAtt"][0].as_str().unwrap();
    assert!(!resources[group]["Properties"]["RetentionInDays"].is_null());
    let format = access["Format"].as_str().unwrap();
    // Who called: the token's client id, never the token.
    assert!(
        format.contains("$context.authorizer.claims.client_id"),
        "{format}"
    );
    assert!(!format.to_lowercase().contains("authorization"), "{format}");
}

#[test]
fn abuse_and_cost_limits_are_set_by_default() {
    let t = template();
    let parameter = |name: &str| t["Parameters"][name]["Default"].as_u64().unwrap();
    assert!(parameter("EnqueueReservedConcurrency") > 0);
    assert!(parameter("ListReservedConcurrency") > 0);
    let table = &translated()["Resources"]["MessagesTable"]["Properties"]["OnDemandThroughput"];
    assert_eq!(
        table["MaxWriteRequestUnits"]["Ref"],
        "TableMaxWriteRequestUnits"
    );
    assert_eq!(
        table["MaxReadRequestUnits"]["Ref"],
        "TableMaxReadRequestUnits"
    );
    // A flood cannot expire acknowledged messages before the dead-letter queue keeps them.
    let retention = parameter("QueueRetentionSeconds");
    assert!(retention >= 4 * 24 * 3600);
    assert!(
        t["Parameters"]["QueueRetentionSeconds"]["MaxValue"]
            .as_u64()
            .unwrap()
            < 14 * 24 * 3600
    );
}
