//! Metrics in CloudWatch Embedded Metric Format: one JSON document a line on stdout, which
//! Lambda hands to CloudWatch Logs, which extracts the metrics. No network call, no client,
//! no flush at the end of an invocation.
//!
//! Why not a crate: `metrics_cloudwatch_embedded` fits well, but it brings the `metrics`
//! facade and a collector that flushes at the end of each invocation through a layer around
//! the handler; our two functions emit two documents at known points, so a small serde
//! writer whose exact output the tests pin is less to build and to trust on two cores.
//!
//! Names (namespace [`NAMESPACE`], dimension `FunctionName`): enqueue emits `MessagesEnqueued`
//! (messages, a batch's accepted ones), `RequestsReplayed` (idempotency keys) and
//! `RequestsRefused` (with dimension `Reason` too); the consumer `MessagesStored`,
//! `RecordsFailed`, `MessagesDeadLettered`, `BatchSize`, `StoreLatency` and, a value per
//! stored message, `EndToEndLatency` (stored minus accepted, from the job id: CloudWatch keeps
//! the values, so p50 and p99 can be asked of it). template.yaml's CloudWatch dashboard reads
//! them.

use lambda_http::http::StatusCode;
use serde::ser::SerializeMap as _;
use serde::{Serialize, Serializer};

use crate::clock::Clock;

pub const NAMESPACE: &str = "MessagePipeline";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

// The document is a map written entry by entry (not a `serde_json::Map`, whose order depends
// on a feature flag that another crate in the build may turn on): `_aws`, then the
// dimensions' values, then the metrics' values, in the order they were added.
impl Serialize for Document {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let metadata = Metadata {
            timestamp: self.timestamp_ms,
            cloud_watch_metrics: [Directive {
                namespace: NAMESPACE,
                dimensions: [self.dimensions.iter().map(|(name, _)| *name).collect()],
                metrics: self
                    .metrics
                    .iter()
                    .map(|(name, unit, _)| Definition {
                        name,
                        unit: unit.name(),
                    })
                    .collect(),
            }],
        };
        let mut map =
            serializer.serialize_map(Some(1 + self.dimensions.len() + self.metrics.len()))?;
        map.serialize_entry("_aws", &metadata)?;
        for (name, value) in &self.dimensions {
            map.serialize_entry(name, value)?;
        }
        for (name, _, value) in &self.metrics {
            match value {
                Value::One(value) => map.serialize_entry(name, &Number(*value))?,
                Value::Many(values) => {
                    let numbers: Vec<Number> = values.iter().copied().map(Number).collect();
                    map.serialize_entry(name, &numbers)?;
                }
            }
        }
        map.end()
    }
}

/// A metric's value: one number, or (EMF's array form) several, each counted as a sample.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    One(f64),
    Many(Vec<f64>),
}

/// A number as EMF's examples write it: whole numbers as integers (`8`, not `8.0`).
struct Number(f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            serializer.serialize_i64(self.0 as i64)
        } else {
            serializer.serialize_f64(self.0)
        }
    }
}

/// The most values EMF takes for one metric in one document.
pub const EMF_MAX_VALUES: usize = 100;

/// EMF's `_aws` member.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata<'a> {
    timestamp: u64,
    cloud_watch_metrics: [Directive<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    namespace: &'static str,
    dimensions: [Vec<&'static str>; 1],
    metrics: Vec<Definition<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Definition<'a> {
    name: &'a str,
    unit: &'static str,
}

/// One EMF document: the metrics of one event, under one set of dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    timestamp_ms: u64,
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, Value)>,
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
        self.metrics.push((name, unit, Value::One(value)));
        self
    }

    /// A metric with several samples (at most [`EMF_MAX_VALUES`]; none adds nothing).
    pub fn values(mut self, name: &'static str, unit: Unit, values: &[f64]) -> Self {
        debug_assert!(values.len() <= EMF_MAX_VALUES);
        if !values.is_empty() {
            self.metrics
                .push((name, unit, Value::Many(values.to_vec())));
        }
        self
    }

    /// The document as one line of JSON, `_aws` first and then the values in the order they
    /// were added.
    pub fn to_line(&self) -> String {
        // Plain strings and numbers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
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
    /// Reported failed: retried.
    pub failed: usize,
    /// Noted as dead-lettered: moved at once, or failed at their last receive.
    pub dead_lettered: usize,
    pub store_latency_ms: u64,
    /// Backed off, by class.
    pub retried_transient: usize,
    pub retried_deployment: usize,
    /// Permanent failures put in the dead-letter queue by this invocation.
    pub dead_lettered_at_once: usize,
    /// The longest backoff chosen (zero when none).
    pub longest_backoff: std::time::Duration,
}

impl BatchOutcome {
    /// What the invocation adds to its minute of flow, stored messages' latencies included.
    pub fn flow(&self, at_ms: u64, latencies_ms: Vec<u64>) -> crate::domain::BatchFlow {
        crate::domain::BatchFlow {
            at_ms,
            stored: self.stored as u64,
            failed_transient: self.retried_transient as u64,
            failed_deployment: self.retried_deployment as u64,
            failed_permanent: self.dead_lettered_at_once as u64,
            dead_lettered: self.dead_lettered as u64,
            latencies_ms,
        }
    }
}

/// The consumer's documents for one invocation: its counts, with each stored message's
/// end-to-end latency (`latencies_ms`) as `EndToEndLatency` samples, [`EMF_MAX_VALUES`] a
/// document: the first carries the counts too, any further ones latencies only.
pub fn batch_documents(
    document: Document,
    outcome: BatchOutcome,
    latencies_ms: &[u64],
) -> Vec<Document> {
    let samples: Vec<f64> = latencies_ms.iter().map(|&ms| ms as f64).collect();
    let mut chunks = samples.chunks(EMF_MAX_VALUES);
    let latency = |document: Document, chunk: &[f64]| {
        document.values("EndToEndLatency", Unit::Milliseconds, chunk)
    };
    let first = latency(
        batch_outcome(document.clone(), outcome),
        chunks.next().unwrap_or_default(),
    );
    std::iter::once(first)
        .chain(chunks.map(|chunk| latency(document.clone(), chunk)))
        .collect()
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
        .metric(
            "RecordsRetriedTransient",
            Unit::Count,
            outcome.retried_transient as f64,
        )
        .metric(
            "RecordsRetriedDeployment",
            Unit::Count,
            outcome.retried_deployment as f64,
        )
        .metric(
            "RecordsDeadLetteredAtOnce",
            Unit::Count,
            outcome.dead_lettered_at_once as f64,
        )
        .metric(
            "RetryBackoff",
            Unit::Seconds,
            outcome.longest_backoff.as_secs() as f64,
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
                retried_transient: 1,
                retried_deployment: 0,
                dead_lettered_at_once: 1,
                longest_backoff: std::time::Duration::from_secs(60),
            },
        );
        assert_eq!(
            document.to_line(),
            r#"{"_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[{"Namespace":"MessagePipeline","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"BatchSize","Unit":"Count"},{"Name":"MessagesStored","Unit":"Count"},{"Name":"RecordsFailed","Unit":"Count"},{"Name":"MessagesDeadLettered","Unit":"Count"},{"Name":"StoreLatency","Unit":"Milliseconds"},{"Name":"RecordsRetriedTransient","Unit":"Count"},{"Name":"RecordsRetriedDeployment","Unit":"Count"},{"Name":"RecordsDeadLetteredAtOnce","Unit":"Count"},{"Name":"RetryBackoff","Unit":"Seconds"}]}]},"FunctionName":"stack-ConsumerFunction-x","BatchSize":10,"MessagesStored":8,"RecordsFailed":2,"MessagesDeadLettered":1,"StoreLatency":17,"RecordsRetriedTransient":1,"RecordsRetriedDeployment":0,"RecordsDeadLetteredAtOnce":1,"RetryBackoff":60}"#
        );
    }

    #[test]
    fn end_to_end_latencies_are_value_arrays_of_at_most_100_a_document() {
        let at = || Document::at(1_700_000_000_123, "consumer");
        let outcome = BatchOutcome {
            records: 3,
            stored: 3,
            ..BatchOutcome::default()
        };
        let few = batch_documents(at(), outcome, &[120, 45, 3_600_000]);
        assert_eq!(few.len(), 1);
        let line = few[0].to_line();
        assert!(
            line.ends_with(r#""RetryBackoff":0,"EndToEndLatency":[120,45,3600000]}"#),
            "{line}"
        );
        assert!(line.contains(r#"{"Name":"EndToEndLatency","Unit":"Milliseconds"}"#));

        // 250 values: the batch's counts and 100 values, then 100, then 50; every value once.
        let many: Vec<u64> = (0..250).collect();
        let documents = batch_documents(at(), outcome, &many);
        let parsed: Vec<serde_json::Value> = documents
            .iter()
            .map(|d| serde_json::from_str(&d.to_line()).unwrap())
            .collect();
        let sizes: Vec<usize> = parsed
            .iter()
            .map(|p| p["EndToEndLatency"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(parsed[0]["MessagesStored"], 3);
        assert!(parsed[1].get("MessagesStored").is_none());
        assert_eq!(parsed[2]["FunctionName"], "consumer");
        let values: Vec<u64> = parsed
            .iter()
            .flat_map(|p| p["EndToEndLatency"].as_array().unwrap().clone())
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(values, many);

        // Nothing stored: no latency metric at all (EMF refuses an empty array).
        let none = batch_documents(at(), BatchOutcome::default(), &[]);
        assert_eq!(none.len(), 1);
        assert!(!none[0].to_line().contains("EndToEndLatency"));
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
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["FunctionName"], "fn \"quoted\"\n");
        assert_eq!(parsed["StoreLatency"], 1.5);
    }
}
