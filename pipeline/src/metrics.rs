//! Metrics in CloudWatch Embedded Metric Format: one JSON document a line on stdout, which
//! Lambda hands to CloudWatch Logs, which extracts the metrics. No network call, no client,
//! no flush at the end of an invocation.
//!
//! Why not a crate: `metrics_cloudwatch_embedded` fits well, but it brings the `metrics`
//! facade and a collector that flushes at the end of each invocation through a layer around
//! the handler; our two functions emit two documents at known points, so a 100-line writer
//! whose exact output the tests pin is less to build and to trust on two cores.
//!
//! Names (namespace [`NAMESPACE`], dimension `FunctionName`): enqueue emits `MessagesEnqueued`
//! (messages, a batch's accepted ones), `RequestsReplayed` (idempotency keys) and
//! `RequestsRefused` (with dimension `Reason` too); the consumer `MessagesStored`,
//! `RecordsFailed`, `MessagesDeadLettered`, `BatchSize` and `StoreLatency`. template.yaml's
//! CloudWatch dashboard reads them.

use lambda_http::http::StatusCode;
use serde_json::Value;

use crate::clock::Clock;

pub const NAMESPACE: &str = "MessagePipeline";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: the metrics of one event, under one set of dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    timestamp_ms: u64,
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, f64)>,
}

impl Document {
    pub fn at(timestamp_ms: u64, function: &str) -> Self {
        Self {
            timestamp_ms,
            dimensions: vec![("FunctionName", function.to_owned())],
            metrics: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &'static str, value: &str) -> Self {
        self.dimensions.push((name, value.to_owned()));
        self
    }

    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name, unit, value));
        self
    }

    /// The document as one line of JSON, `_aws` first and then the values in the order they
    /// were added (written by hand: a `serde_json::Map`'s order depends on a feature flag
    /// that another crate in the build may turn on).
    pub fn to_line(&self) -> String {
        let text = |s: &str| Value::String(s.to_owned()).to_string();
        let number = |value: f64| {
            if value.fract() == 0.0 && value.abs() < 1e15 {
                (value as i64).to_string()
            } else {
                value.to_string()
            }
        };
        let dimension_names: Vec<String> = self.dimensions.iter().map(|(n, _)| text(n)).collect();
        let definitions: Vec<String> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| {
                format!(r#"{{"Name":{},"Unit":{}}}"#, text(name), text(unit.name()))
            })
            .collect();
        let mut line = format!(
            r#"{{"_aws":{{"Timestamp":{},"CloudWatchMetrics":[{{"Namespace":{},"Dimensions":[[{}]],"Metrics":[{}]}}]}}"#,
            self.timestamp_ms,
            text(NAMESPACE),
            dimension_names.join(","),
            definitions.join(",")
        );
        for (name, value) in &self.dimensions {
            line.push_str(&format!(",{}:{}", text(name), text(value)));
        }
        for (name, _, value) in &self.metrics {
            line.push_str(&format!(",{}:{}", text(name), number(*value)));
        }
        line.push('}');
        line
    }

    /// A document for the function this process runs as in Lambda (or `cargo lambda watch`),
    /// stamped with `clock`'s now.
    pub fn for_this_function(clock: &dyn Clock) -> Self {
        Self::at(
            clock.now_ms_u64(),
            lambda_function_name().unwrap_or_default(),
        )
    }

    /// Prints the document when running in Lambda (or `cargo lambda watch`); anywhere else
    /// (the local runner, tests) it is not printed: their stdout is for people.
    pub fn emit(&self) {
        if lambda_function_name().is_some() {
            println!("{}", self.to_line());
        }
    }
}

/// `AWS_LAMBDA_FUNCTION_NAME`, read once: every request and batch asks for it.
fn lambda_function_name() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
        .as_deref()
}

/// The enqueue function's metrics for one answer: a job queued, or a request refused and why.
pub fn enqueue_outcome(document: Document, outcome: EnqueueOutcome) -> Document {
    let status = match outcome {
        EnqueueOutcome::Accepted(messages) => {
            return document.metric("MessagesEnqueued", Unit::Count, messages as f64)
        }
        EnqueueOutcome::Replayed => return document.metric("RequestsReplayed", Unit::Count, 1.0),
        EnqueueOutcome::Refused(status) => status,
    };
    let reason = match status.as_u16() {
        400 => "invalid",
        401 => "unauthorized",
        403 => "forbidden",
        404 | 405 => "unknown_route",
        409 => "key_in_progress",
        413 => "too_large",
        415 => "not_json",
        422 => "key_reused",
        503 => "queue_unavailable",
        _ => "other",
    };
    document
        .dimension("Reason", reason)
        .metric("RequestsRefused", Unit::Count, 1.0)
}

/// What one enqueue request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// This many messages queued (a batch may queue some of its messages: a 207).
    Accepted(usize),
    /// The first answer to an idempotency key, given again: nothing queued.
    Replayed,
    /// Nothing queued, for the reason the status says.
    Refused(StatusCode),
}

/// What one consumer invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub records: usize,
    pub stored: usize,
    pub failed: usize,
    pub dead_lettered: usize,
    pub store_latency_ms: u64,
}

/// The consumer's metrics for one invocation.
pub fn batch_outcome(document: Document, outcome: BatchOutcome) -> Document {
    document
        .metric("BatchSize", Unit::Count, outcome.records as f64)
        .metric("MessagesStored", Unit::Count, outcome.stored as f64)
        .metric("RecordsFailed", Unit::Count, outcome.failed as f64)
        .metric(
            "MessagesDeadLettered",
            Unit::Count,
            outcome.dead_lettered as f64,
        )
        .metric(
            "StoreLatency",
            Unit::Milliseconds,
            outcome.store_latency_ms as f64,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_batch_is_this_exact_emf_line() {
        let document = batch_outcome(
            Document::at(1_700_000_000_123, "stack-ConsumerFunction-x"),
            BatchOutcome {
                records: 10,
                stored: 8,
                failed: 2,
                dead_lettered: 1,
                store_latency_ms: 17,
            },
        );
        assert_eq!(
            document.to_line(),
            r#"{"_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[{"Namespace":"MessagePipeline","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"BatchSize","Unit":"Count"},{"Name":"MessagesStored","Unit":"Count"},{"Name":"RecordsFailed","Unit":"Count"},{"Name":"MessagesDeadLettered","Unit":"Count"},{"Name":"StoreLatency","Unit":"Milliseconds"}]}]},"FunctionName":"stack-ConsumerFunction-x","BatchSize":10,"MessagesStored":8,"RecordsFailed":2,"MessagesDeadLettered":1,"StoreLatency":17}"#
        );
    }

    #[test]
    fn an_accepted_post_and_a_refused_one_are_these_exact_emf_lines() {
        let at = || Document::at(1_700_000_000_000, "enqueue");
        assert_eq!(
            enqueue_outcome(at(), EnqueueOutcome::Accepted(1)).to_line(),
            r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"MessagePipeline","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"MessagesEnqueued","Unit":"Count"}]}]},"FunctionName":"enqueue","MessagesEnqueued":1}"#
        );
        assert_eq!(
            enqueue_outcome(at(), EnqueueOutcome::Refused(StatusCode::PAYLOAD_TOO_LARGE)).to_line(),
            r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"MessagePipeline","Dimensions":[["FunctionName","Reason"]],"Metrics":[{"Name":"RequestsRefused","Unit":"Count"}]}]},"FunctionName":"enqueue","Reason":"too_large","RequestsRefused":1}"#
        );
        assert_eq!(
            enqueue_outcome(at(), EnqueueOutcome::Accepted(37)).to_line(),
            r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"MessagePipeline","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"MessagesEnqueued","Unit":"Count"}]}]},"FunctionName":"enqueue","MessagesEnqueued":37}"#
        );
        assert_eq!(
            enqueue_outcome(at(), EnqueueOutcome::Replayed).to_line(),
            r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"MessagePipeline","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"RequestsReplayed","Unit":"Count"}]}]},"FunctionName":"enqueue","RequestsReplayed":1}"#
        );
    }
}

#[cfg(test)]
mod escaping {
    use super::*;

    #[test]
    fn names_are_json_escaped_and_the_line_parses() {
        let line = Document::at(1, "fn \"quoted\"\n")
            .metric("StoreLatency", Unit::Milliseconds, 1.5)
            .to_line();
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["FunctionName"], "fn \"quoted\"\n");
        assert_eq!(parsed["StoreLatency"], 1.5);
    }
}
