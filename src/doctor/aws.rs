//! A deployed stack's facts, read with the caller's credentials: its resources from
//! CloudFormation, then the queues' attributes, the consumer's configuration and event source
//! mapping, the alarms and who is subscribed to their topics, and the API's routes.

use std::collections::HashMap;

use anyhow::anyhow;
use aws_sdk_lambda::types::FunctionResponseType;
use aws_sdk_sqs::types::QueueAttributeName;

use super::{
    AlarmFacts, ConsumerFacts, DeadLetterFacts, Facts, MappingFacts, QueueFacts, RouteFacts,
};

/// Everything the checks need of stack `stack`.
pub async fn facts(stack: &str) -> anyhow::Result<Facts> {
    let config = pipeline::adapters::aws::sdk_config().await;
    let resources = resources(&config, stack).await?;
    let physical = |logical: &str| {
        resources
            .get(logical)
            .map(|(_, id)| id.clone())
            .ok_or_else(|| {
                anyhow!("stack {stack} has no {logical}: is it this project's template?")
            })
    };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = attributes(&sqs, &physical("MessagesQueue")?).await?;
    let dead = attributes(&sqs, &physical("DeadLetterQueue")?).await?;
    let lambda = aws_sdk_lambda::Client::new(&config);
    let consumer = physical("ConsumerFunction")?;
    let alarm_names: Vec<String> = resources
        .values()
        .filter(|(kind, _)| kind == "AWS::CloudWatch::Alarm")
        .map(|(_, name)| name.clone())
        .collect();
    Ok(Facts {
        queue: QueueFacts {
            visibility_timeout_secs: number(&queue, QueueAttributeName::VisibilityTimeout),
            retention_secs: number(&queue, QueueAttributeName::MessageRetentionPeriod),
            max_receive_count: queue
                .get(&QueueAttributeName::RedrivePolicy)
                .and_then(|policy| serde_json::from_str::<serde_json::Value>(policy).ok())
                .and_then(|policy| match &policy["maxReceiveCount"] {
                    serde_json::Value::Number(n) => n.as_u64(),
                    serde_json::Value::String(s) => s.parse().ok(),
                    _ => None,
                })
                .map(|n| n as u32),
        },
        dead_letter_queue: Some(DeadLetterFacts {
            retention_secs: number(&dead, QueueAttributeName::MessageRetentionPeriod),
            messages: number(&dead, QueueAttributeName::ApproximateNumberOfMessages),
            oldest_age_secs: None,
        }),
        consumer: consumer_facts(&lambda, &consumer).await?,
        mapping: mapping(&lambda, &consumer).await?,
        alarms: Some(alarms(&config, alarm_names).await?),
        routes: Some(routes(&config, &physical("MessagesApi")?).await?),
    })
}

/// A failed AWS call as one error: what was being done and the SDK's causes, and when no
/// credentials were found (the SDK's last resort is the instance metadata service), how to
/// give some.
pub fn call_failed(doing: impl std::fmt::Display, error: impl std::error::Error) -> anyhow::Error {
    let causes = aws_sdk_sqs::error::DisplayErrorContext(&error).to_string();
    if causes.contains("loading credentials") {
        anyhow!(
            "{doing}: no AWS credentials found. For a stack on AWS, set them as for the AWS CLI; \
             for the stack `infra/local.sh up` deployed, `source infra/env.sh` first"
        )
    } else {
        anyhow!("{doing}: {causes}")
    }
}

/// A stack's resources: logical id → (type, physical id).
pub async fn resources(
    config: &aws_config::SdkConfig,
    stack: &str,
) -> anyhow::Result<HashMap<String, (String, String)>> {
    let output = aws_sdk_cloudformation::Client::new(config)
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| call_failed(format!("reading stack {stack}"), e))?;
    Ok(output
        .stack_resources()
        .iter()
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_owned(),
                (
                    r.resource_type()?.to_owned(),
                    r.physical_resource_id()?.to_owned(),
                ),
            ))
        })
        .collect())
}

async fn attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<HashMap<QueueAttributeName, String>> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| call_failed(format!("reading {url}'s attributes"), e))?;
    Ok(output.attributes.unwrap_or_default())
}

fn number(attributes: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> u64 {
    attributes
        .get(&name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn consumer_facts(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> anyhow::Result<ConsumerFacts> {
    let configuration = lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| call_failed(format!("reading {function}"), e))?;
    let concurrency = lambda
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
        .map_err(|e| call_failed(format!("reading {function}'s concurrency"), e))?;
    Ok(ConsumerFacts {
        timeout_secs: configuration.timeout().unwrap_or(3).max(0) as u64,
        reserved_concurrency: concurrency
            .reserved_concurrent_executions()
            .map(|n| n.max(0) as u32),
        visibility_timeouts: 6,
    })
}

async fn mapping(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> anyhow::Result<Option<MappingFacts>> {
    let output = lambda
        .list_event_source_mappings()
        .function_name(function)
        .send()
        .await
        .map_err(|e| call_failed(format!("reading {function}'s event source mappings"), e))?;
    Ok(output
        .event_source_mappings()
        .first()
        .map(|m| MappingFacts {
            enabled: m.state() == Some("Enabled"),
            batching_window_secs: m.maximum_batching_window_in_seconds().unwrap_or(0).max(0) as u64,
            maximum_concurrency: m
                .scaling_config()
                .and_then(|s| s.maximum_concurrency())
                .map(|n| n.max(0) as u32),
            reports_batch_item_failures: m
                .function_response_types()
                .contains(&FunctionResponseType::ReportBatchItemFailures),
        }))
}

/// Each alarm, and how many of its actions reach someone: an SNS topic with a confirmed
/// subscription (a pending e-mail one reaches no one yet); any other action counts.
async fn alarms(
    config: &aws_config::SdkConfig,
    names: Vec<String>,
) -> anyhow::Result<Vec<AlarmFacts>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(config);
    let sns = aws_sdk_sns::Client::new(config);
    let output = cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names))
        .send()
        .await
        .map_err(|e| call_failed("reading the alarms", e))?;
    let mut heard_topics: HashMap<String, bool> = HashMap::new();
    let mut facts = Vec::new();
    for alarm in output.metric_alarms() {
        let mut heard = 0;
        for action in alarm.alarm_actions() {
            if !action.starts_with("arn:aws:sns:") {
                heard += 1;
                continue;
            }
            if !heard_topics.contains_key(action) {
                let subscriptions = sns
                    .list_subscriptions_by_topic()
                    .topic_arn(action)
                    .send()
                    .await
                    .map_err(|e| call_failed(format!("reading {action}'s subscriptions"), e))?;
                let confirmed = subscriptions.subscriptions().iter().any(|s| {
                    s.subscription_arn()
                        .is_some_and(|arn| arn.starts_with("arn:"))
                });
                heard_topics.insert(action.clone(), confirmed);
            }
            heard += usize::from(heard_topics[action]);
        }
        facts.push(AlarmFacts {
            name: alarm.alarm_name().unwrap_or_default().to_owned(),
            heard_actions: heard,
        });
    }
    Ok(facts)
}

async fn routes(config: &aws_config::SdkConfig, api: &str) -> anyhow::Result<Vec<RouteFacts>> {
    let client = aws_sdk_apigatewayv2::Client::new(config);
    let mut routes = Vec::new();
    let mut next = None;
    loop {
        let output = client
            .get_routes()
            .api_id(api)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| call_failed(format!("reading API {api}'s routes"), e))?;
        routes.extend(output.items().iter().map(|route| {
            RouteFacts {
                key: route.route_key().unwrap_or_default().to_owned(),
                authorization: route
                    .authorization_type()
                    .map_or("NONE", |t| t.as_str())
                    .to_owned(),
            }
        }));
        next = output.next_token;
        if next.is_none() {
            return Ok(routes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_without_credentials_says_how_to_give_some() {
        let missing = std::io::Error::other("an error occurred while loading credentials: IMDS");
        let said = call_failed("reading stack s", missing).to_string();
        assert!(
            said.starts_with("reading stack s: no AWS credentials found"),
            "{said}"
        );
        assert!(said.contains("source infra/env.sh"), "{said}");
        let other = call_failed("reading stack s", std::io::Error::other("throttled"));
        assert!(
            other.to_string().starts_with("reading stack s: throttled"),
            "{other}"
        );
    }
}
