//! `pipeline-ctl doctor`: is this deployment configured so that it cannot lose or
//! double-process messages, and will someone hear when it goes wrong? The facts are read
//! from a deployed stack ([`aws`]) or a running runner ([`runner`]); the checks here are pure,
//! so each is tested on its own, and each verdict says what to change.

pub mod aws;
pub mod runner;

use serde::Serialize;

/// What the checks look at. `None` where the target has no such thing (the runner has no
/// alarms and no API Gateway routes) or it could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub queue: QueueFacts,
    pub dead_letter_queue: Option<DeadLetterFacts>,
    pub consumer: ConsumerFacts,
    pub mapping: Option<MappingFacts>,
    pub alarms: Option<Vec<AlarmFacts>>,
    pub routes: Option<Vec<RouteFacts>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueFacts {
    pub visibility_timeout_secs: u64,
    pub retention_secs: u64,
    /// The redrive policy's `maxReceiveCount`; `None`: no redrive policy.
    pub max_receive_count: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterFacts {
    pub retention_secs: u64,
    pub messages: u64,
    /// The oldest dead letter's age; `None` where it cannot be told (no CloudWatch datapoint).
    pub oldest_age_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerFacts {
    pub timeout_secs: u64,
    pub reserved_concurrency: Option<u32>,
    /// How many of its timeouts the visibility timeout must cover: six on Lambda (AWS's
    /// guidance: the poller retries throttled invocations within it), one on the runner,
    /// which cancels an invocation at its timeout and retries nothing itself.
    pub visibility_timeouts: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappingFacts {
    pub enabled: bool,
    pub batching_window_secs: u64,
    pub maximum_concurrency: Option<u32>,
    pub reports_batch_item_failures: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlarmFacts {
    pub name: String,
    /// The alarm's actions that someone is subscribed to (a confirmed SNS subscription).
    pub heard_actions: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteFacts {
    /// `GET /messages`, as API Gateway names it.
    pub key: String,
    /// `JWT`, `NONE`, ...
    pub authorization: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    /// Nothing to check on this target (the runner's alarms).
    Skipped,
}

/// One check's verdict: a line, and what to change when it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Verdict {
    fn ok(check: &'static str, detail: String) -> Self {
        Self {
            check,
            status: Status::Ok,
            detail,
            fix: None,
        }
    }

    fn fail(check: &'static str, detail: String, fix: String) -> Self {
        Self {
            check,
            status: Status::Fail,
            detail,
            fix: Some(fix),
        }
    }

    fn skipped(check: &'static str, detail: &str) -> Self {
        Self {
            check,
            status: Status::Skipped,
            detail: detail.to_owned(),
            fix: None,
        }
    }
}

/// Every check, in the order an operator reads them.
pub fn diagnose(facts: &Facts) -> Vec<Verdict> {
    vec![
        visibility(facts),
        concurrency(facts),
        redrive(facts),
        mapping(facts),
        dead_letters(facts),
        alarms(facts),
        routes(facts),
    ]
}

/// A batch must be over, its retries' backoffs set, before its records come back: else a
/// record is delivered twice while its first delivery still runs. AWS asks for six times
/// the function's timeout, plus the batching window.
fn visibility(facts: &Facts) -> Verdict {
    const CHECK: &str = "visibility timeout";
    let window = facts.mapping.as_ref().map_or(0, |m| m.batching_window_secs);
    let consumer = &facts.consumer;
    let needed = consumer.visibility_timeouts * consumer.timeout_secs + window;
    let have = facts.queue.visibility_timeout_secs;
    let detail = format!(
        "{have} s; {} × the consumer's timeout ({} s) + the batching window ({window} s) = {needed} s",
        consumer.visibility_timeouts, consumer.timeout_secs
    );
    if have >= needed {
        Verdict::ok(CHECK, detail)
    } else {
        Verdict::fail(
            CHECK,
            detail,
            format!("raise the queue's visibility timeout to at least {needed} s (QueueVisibilityTimeoutSeconds), or lower the consumer's timeout"),
        )
    }
}

/// An event source mapping allowed more concurrent invocations than the function may run
/// gets throttled, and throttled batches come back as failed receives.
fn concurrency(facts: &Facts) -> Verdict {
    const CHECK: &str = "consumer concurrency";
    let maximum = facts.mapping.as_ref().and_then(|m| m.maximum_concurrency);
    match (maximum, facts.consumer.reserved_concurrency) {
        (Some(maximum), Some(reserved)) if maximum > reserved => Verdict::fail(
            CHECK,
            format!("the mapping's MaximumConcurrency {maximum} > the consumer's reserved concurrency {reserved}"),
            format!("lower ConsumerMaxConcurrency to {reserved} or less, or reserve more: throttled batches count as receives and push records towards the dead-letter queue"),
        ),
        (Some(maximum), Some(reserved)) => Verdict::ok(
            CHECK,
            format!("MaximumConcurrency {maximum} ≤ reserved concurrency {reserved}"),
        ),
        (maximum, reserved) => Verdict::ok(
            CHECK,
            format!(
                "MaximumConcurrency {}, reserved concurrency {}: not both set",
                maximum.map_or("unset".into(), |n| n.to_string()),
                reserved.map_or("unset".into(), |n| n.to_string())
            ),
        ),
    }
}

/// A record that can never be stored must end somewhere it is kept: a redrive policy, to a
/// dead-letter queue that keeps it longer than the queue did (a message's age counts from
/// its first send, so one moved late would otherwise expire at once).
fn redrive(facts: &Facts) -> Verdict {
    const CHECK: &str = "redrive";
    let Some(max_receive_count) = facts.queue.max_receive_count else {
        return Verdict::fail(
            CHECK,
            "the queue has no redrive policy: a record that keeps failing is retried until it expires, and is lost".into(),
            "give the queue a RedrivePolicy to a dead-letter queue (template.yaml does)".into(),
        );
    };
    let Some(dead) = &facts.dead_letter_queue else {
        return Verdict::fail(
            CHECK,
            "the redrive policy names a dead-letter queue that cannot be read".into(),
            "check that the dead-letter queue exists and that you may read its attributes".into(),
        );
    };
    let queue = facts.queue.retention_secs;
    let detail = format!(
        "after {max_receive_count} receives; dead-letter queue keeps {}, the queue {}",
        days(dead.retention_secs),
        days(queue)
    );
    if dead.retention_secs > queue {
        Verdict::ok(CHECK, detail)
    } else {
        Verdict::fail(
            CHECK,
            detail,
            "make the dead-letter queue's MessageRetentionPeriod longer than the queue's (14 days is SQS's most)".into(),
        )
    }
}

fn days(secs: u64) -> String {
    if secs == runner::KEPT_UNTIL_DELETED {
        "until deleted".into()
    } else if secs.is_multiple_of(86_400) {
        format!("{} d", secs / 86_400)
    } else {
        format!("{secs} s")
    }
}

/// The consumer only hears of the queue through its mapping, which must be on and must let
/// it report the records that failed (else one failure fails the whole batch again).
fn mapping(facts: &Facts) -> Verdict {
    const CHECK: &str = "event source mapping";
    match &facts.mapping {
        None => Verdict::fail(
            CHECK,
            "no event source mapping from the queue to the consumer".into(),
            "deploy the consumer's SQS event (template.yaml's ConsumerFunction.Events.Queue)".into(),
        ),
        Some(m) if !m.enabled => Verdict::fail(
            CHECK,
            "the mapping is disabled: nothing is consumed, the backlog grows".into(),
            "enable it (aws lambda update-event-source-mapping --enabled)".into(),
        ),
        Some(m) if !m.reports_batch_item_failures => Verdict::fail(
            CHECK,
            "enabled, without ReportBatchItemFailures: one failed record sends its whole batch back".into(),
            "set FunctionResponseTypes: [ReportBatchItemFailures] on the mapping".into(),
        ),
        Some(_) => Verdict::ok(CHECK, "enabled, reporting batch item failures".into()),
    }
}

fn dead_letters(facts: &Facts) -> Verdict {
    const CHECK: &str = "dead letters";
    let Some(dead) = &facts.dead_letter_queue else {
        return Verdict::skipped(CHECK, "no dead-letter queue to look into");
    };
    if dead.messages == 0 {
        return Verdict::ok(CHECK, "the dead-letter queue is empty".into());
    }
    let age = dead
        .oldest_age_secs
        .map_or("its oldest's age unknown".into(), |s| {
            format!("the oldest {s} s old")
        });
    Verdict::fail(
        CHECK,
        format!("{} dead letters, {age}", dead.messages),
        "look at them (pipeline-ctl dlq list), fix their cause, then requeue or delete them".into(),
    )
}

fn alarms(facts: &Facts) -> Verdict {
    const CHECK: &str = "alarms";
    let Some(alarms) = &facts.alarms else {
        return Verdict::skipped(
            CHECK,
            "this target has no alarms (the runner: watch /stats)",
        );
    };
    let unheard: Vec<&str> = alarms
        .iter()
        .filter(|a| a.heard_actions == 0)
        .map(|a| a.name.as_str())
        .collect();
    if alarms.is_empty() {
        Verdict::fail(
            CHECK,
            "no alarm watches this stack".into(),
            "deploy template.yaml's alarms".into(),
        )
    } else if unheard.is_empty() {
        Verdict::ok(
            CHECK,
            format!("{} alarms, each with a subscribed action", alarms.len()),
        )
    } else {
        Verdict::fail(
            CHECK,
            format!(
                "{} of {} alarms notify no one subscribed: {}",
                unheard.len(),
                alarms.len(),
                unheard.join(", ")
            ),
            "set AlarmEmail (and confirm the mail), or AlarmTopicArn to a topic someone reads"
                .into(),
        )
    }
}

/// Every route needs the JWT authorizer but the ones the route table names public.
fn routes(facts: &Facts) -> Verdict {
    const CHECK: &str = "authorizer";
    let Some(routes) = &facts.routes else {
        return Verdict::skipped(
            CHECK,
            "no API Gateway routes (the runner checks tokens itself)",
        );
    };
    let public: Vec<String> = pipeline::api::ROUTES
        .iter()
        .filter(|r| r.access == pipeline::api::Access::Public)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let open: Vec<&str> = routes
        .iter()
        .filter(|r| r.authorization != "JWT" && !public.contains(&r.key))
        .map(|r| r.key.as_str())
        .collect();
    if routes.is_empty() {
        Verdict::fail(
            CHECK,
            "the API has no routes".into(),
            "deploy the template's HttpApi events".into(),
        )
    } else if open.is_empty() {
        Verdict::ok(
            CHECK,
            format!(
                "{} routes; all but the public ones ({}) need a JWT",
                routes.len(),
                public.join(", ")
            ),
        )
    } else {
        Verdict::fail(
            CHECK,
            format!("routes any caller may use: {}", open.join(", ")),
            "give each the JWT authorizer (template.yaml's DefaultAuthorizer) or add it to the route table as public".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's defaults, on AWS.
    fn deployed() -> Facts {
        Facts {
            queue: QueueFacts {
                visibility_timeout_secs: 180,
                retention_secs: 4 * 86_400,
                max_receive_count: Some(9),
            },
            dead_letter_queue: Some(DeadLetterFacts {
                retention_secs: 14 * 86_400,
                messages: 0,
                oldest_age_secs: None,
            }),
            consumer: ConsumerFacts {
                timeout_secs: 30,
                reserved_concurrency: None,
                visibility_timeouts: 6,
            },
            mapping: Some(MappingFacts {
                enabled: true,
                batching_window_secs: 0,
                maximum_concurrency: Some(5),
                reports_batch_item_failures: true,
            }),
            alarms: Some(vec![AlarmFacts {
                name: "dead-letters".into(),
                heard_actions: 1,
            }]),
            routes: Some(vec![
                RouteFacts {
                    key: "POST /messages".into(),
                    authorization: "JWT".into(),
                },
                RouteFacts {
                    key: "GET /openapi.json".into(),
                    authorization: "NONE".into(),
                },
            ]),
        }
    }

    fn failed(facts: &Facts) -> Vec<(&'static str, String)> {
        diagnose(facts)
            .into_iter()
            .filter(|v| v.status == Status::Fail)
            .map(|v| (v.check, v.fix.unwrap()))
            .collect()
    }

    #[test]
    fn the_templates_defaults_pass_every_check() {
        assert_eq!(failed(&deployed()), []);
    }

    #[test]
    fn each_misconfiguration_fails_its_own_check_and_says_what_to_change() {
        let mut short = deployed();
        short.queue.visibility_timeout_secs = 179;
        assert_eq!(
            failed(&short),
            [("visibility timeout", "raise the queue's visibility timeout to at least 180 s (QueueVisibilityTimeoutSeconds), or lower the consumer's timeout".to_owned())]
        );

        let mut throttled = deployed();
        throttled.consumer.reserved_concurrency = Some(2);
        assert_eq!(failed(&throttled)[0].0, "consumer concurrency");

        let mut no_redrive = deployed();
        no_redrive.queue.max_receive_count = None;
        assert_eq!(failed(&no_redrive)[0].0, "redrive");
        let mut short_dlq = deployed();
        short_dlq.dead_letter_queue.as_mut().unwrap().retention_secs = 4 * 86_400;
        assert_eq!(failed(&short_dlq)[0].0, "redrive");

        let mut whole_batches = deployed();
        whole_batches
            .mapping
            .as_mut()
            .unwrap()
            .reports_batch_item_failures = false;
        assert_eq!(failed(&whole_batches)[0].0, "event source mapping");
        let mut off = deployed();
        off.mapping.as_mut().unwrap().enabled = false;
        assert_eq!(failed(&off)[0].0, "event source mapping");

        let mut dead = deployed();
        dead.dead_letter_queue.as_mut().unwrap().messages = 3;
        assert_eq!(failed(&dead)[0].0, "dead letters");

        let mut unheard = deployed();
        unheard.alarms.as_mut().unwrap()[0].heard_actions = 0;
        assert_eq!(failed(&unheard)[0].0, "alarms");

        let mut open = deployed();
        open.routes.as_mut().unwrap()[0].authorization = "NONE".into();
        assert_eq!(failed(&open)[0].0, "authorizer");
    }

    #[test]
    fn what_a_target_does_not_have_is_skipped_not_failed() {
        let mut runner = deployed();
        runner.alarms = None;
        runner.routes = None;
        let skipped: Vec<&str> = diagnose(&runner)
            .into_iter()
            .filter(|v| v.status == Status::Skipped)
            .map(|v| v.check)
            .collect();
        assert_eq!(skipped, ["alarms", "authorizer"]);
    }
}
