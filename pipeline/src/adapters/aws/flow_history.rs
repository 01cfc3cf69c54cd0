//! The flow's history on AWS, from CloudWatch: the functions' own EMF metrics (namespace
//! `MessagePipeline`, by `FunctionName`) and SQS's queue depth, a datapoint a minute, in one
//! `GetMetricData` call (paged).

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy,
};

use crate::domain::{minute_of, FlowMinute, HistoryWindow, MINUTE_MS};
use crate::metrics::NAMESPACE;

/// Whose metrics make the flow: the functions' names (their `FunctionName` dimension) and
/// the queue's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSources {
    pub enqueue_function: String,
    pub consumer_function: String,
    pub queue_name: String,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Enqueue,
    Consumer,
    Queue,
}

/// Each series: its query id, metric, whose it is and the statistic a minute.
const SERIES: &[(&str, &str, Source, &str)] = &[
    ("enqueued", "MessagesEnqueued", Source::Enqueue, "Sum"),
    ("stored", "MessagesStored", Source::Consumer, "Sum"),
    (
        "transient",
        "RecordsRetriedTransient",
        Source::Consumer,
        "Sum",
    ),
    (
        "deployment",
        "RecordsRetriedDeployment",
        Source::Consumer,
        "Sum",
    ),
    (
        "permanent",
        "RecordsDeadLetteredAtOnce",
        Source::Consumer,
        "Sum",
    ),
    ("dead", "MessagesDeadLettered", Source::Consumer, "Sum"),
    ("p50", "EndToEndLatency", Source::Consumer, "p50"),
    ("p99", "EndToEndLatency", Source::Consumer, "p99"),
    (
        "backlog",
        "ApproximateNumberOfMessagesVisible",
        Source::Queue,
        "Maximum",
    ),
];

/// The `GetMetricData` queries for the flow of `sources`, a minute a datapoint.
pub fn queries(sources: &FlowSources) -> Vec<MetricDataQuery> {
    SERIES
        .iter()
        .map(|&(id, name, source, stat)| {
            let (namespace, dimension, value) = match source {
                Source::Enqueue => (NAMESPACE, "FunctionName", &sources.enqueue_function),
                Source::Consumer => (NAMESPACE, "FunctionName", &sources.consumer_function),
                Source::Queue => ("AWS/SQS", "QueueName", &sources.queue_name),
            };
            let metric = Metric::builder()
                .namespace(namespace)
                .metric_name(name)
                .dimensions(Dimension::builder().name(dimension).value(value).build())
                .build();
            let stat = MetricStat::builder()
                .metric(metric)
                .period(60)
                .stat(stat)
                .build();
            MetricDataQuery::builder()
                .id(id)
                .metric_stat(stat)
                .return_data(true)
                .build()
        })
        .collect()
}

/// The minutes starting at `starts` (oldest first), filled from `results`: counts are zero
/// and the backlog and latencies `None` where CloudWatch has no datapoint (nothing happened,
/// or SQS has not published the minute yet).
pub fn minutes_from(results: &[MetricDataResult], starts: &[u64]) -> Vec<FlowMinute> {
    let mut minutes: Vec<FlowMinute> = starts
        .iter()
        .map(|&start_ms| FlowMinute {
            start_ms,
            ..FlowMinute::default()
        })
        .collect();
    let Some(&first) = starts.first() else {
        return minutes;
    };
    for result in results {
        let id = result.id().unwrap_or_default();
        for (timestamp, &value) in result.timestamps().iter().zip(result.values()) {
            let Ok(ms) = u64::try_from(timestamp.to_millis().unwrap_or(-1)) else {
                continue;
            };
            let index = minute_of(ms)
                .checked_sub(first)
                .map(|d| (d / MINUTE_MS) as usize);
            let Some(minute) = index.and_then(|i| minutes.get_mut(i)) else {
                continue;
            };
            let whole = value.max(0.0).round() as u64;
            match id {
                "enqueued" => minute.enqueued += whole,
                "stored" => minute.stored += whole,
                "transient" => minute.failed_transient += whole,
                "deployment" => minute.failed_deployment += whole,
                "permanent" => minute.failed_permanent += whole,
                "dead" => minute.dead_lettered += whole,
                "p50" => minute.latency_p50_ms = Some(whole),
                "p99" => minute.latency_p99_ms = Some(whole),
                "backlog" => minute.backlog = Some(whole),
                _ => {}
            }
        }
    }
    minutes
}

/// The last `window` minutes up to `now_ms`, from CloudWatch.
pub async fn read(
    client: &aws_sdk_cloudwatch::Client,
    sources: &FlowSources,
    window: HistoryWindow,
    now_ms: u64,
) -> anyhow::Result<Vec<FlowMinute>> {
    let starts: Vec<u64> = window.minute_starts(now_ms).collect();
    let start = DateTime::from_millis(starts[0] as i64);
    let end = DateTime::from_millis((minute_of(now_ms) + MINUTE_MS) as i64);
    let mut results: Vec<MetricDataResult> = Vec::new();
    let mut next_token = None;
    loop {
        let output = client
            .get_metric_data()
            .set_metric_data_queries(Some(queries(sources)))
            .start_time(start)
            .end_time(end)
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "CloudWatch GetMetricData failed: {}",
                    aws_sdk_cloudwatch::error::DisplayErrorContext(&error)
                )
            })?;
        results.extend(output.metric_data_results().iter().cloned());
        next_token = output.next_token;
        if next_token.is_none() {
            return Ok(minutes_from(&results, &starts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> FlowSources {
        FlowSources {
            enqueue_function: "stack-EnqueueFunction-1".into(),
            consumer_function: "stack-ConsumerFunction-2".into(),
            queue_name: "stack-MessagesQueue-3".into(),
        }
    }

    #[test]
    fn the_queries_ask_each_function_and_the_queue_for_their_own_metrics() {
        let queries = queries(&sources());
        let described: Vec<String> = queries
            .iter()
            .map(|q| {
                let stat = q.metric_stat().unwrap();
                let metric = stat.metric().unwrap();
                let dimension = &metric.dimensions()[0];
                format!(
                    "{} {}/{} {}={} {} {}",
                    q.id().unwrap(),
                    metric.namespace().unwrap(),
                    metric.metric_name().unwrap(),
                    dimension.name().unwrap(),
                    dimension.value().unwrap(),
                    stat.stat().unwrap(),
                    stat.period().unwrap()
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                "enqueued MessagePipeline/MessagesEnqueued FunctionName=stack-EnqueueFunction-1 Sum 60",
                "stored MessagePipeline/MessagesStored FunctionName=stack-ConsumerFunction-2 Sum 60",
                "transient MessagePipeline/RecordsRetriedTransient FunctionName=stack-ConsumerFunction-2 Sum 60",
                "deployment MessagePipeline/RecordsRetriedDeployment FunctionName=stack-ConsumerFunction-2 Sum 60",
                "permanent MessagePipeline/RecordsDeadLetteredAtOnce FunctionName=stack-ConsumerFunction-2 Sum 60",
                "dead MessagePipeline/MessagesDeadLettered FunctionName=stack-ConsumerFunction-2 Sum 60",
                "p50 MessagePipeline/EndToEndLatency FunctionName=stack-ConsumerFunction-2 p50 60",
                "p99 MessagePipeline/EndToEndLatency FunctionName=stack-ConsumerFunction-2 p99 60",
                "backlog AWS/SQS/ApproximateNumberOfMessagesVisible QueueName=stack-MessagesQueue-3 Maximum 60",
            ]
        );
    }

    /// Results as GetMetricData documents them: an id, timestamps and values in step (here
    /// newest first, as ScanBy may give them), minutes without data absent.
    fn result(id: &str, points: &[(u64, f64)]) -> MetricDataResult {
        MetricDataResult::builder()
            .id(id)
            .set_timestamps(Some(
                points
                    .iter()
                    .map(|(ms, _)| DateTime::from_millis(*ms as i64))
                    .collect(),
            ))
            .set_values(Some(points.iter().map(|(_, v)| *v).collect()))
            .status_code(aws_sdk_cloudwatch::types::StatusCode::Complete)
            .build()
    }

    #[test]
    fn datapoints_land_in_their_minutes_and_absent_ones_are_zero_or_unknown() {
        let first = 1_800_000_000_000;
        let starts: Vec<u64> = (0..3).map(|i| first + i * MINUTE_MS).collect();
        let results = [
            result("enqueued", &[(first + 120_000, 4.0), (first, 10.0)]),
            result("stored", &[(first, 9.0)]),
            result("transient", &[(first, 1.0)]),
            result("p50", &[(first, 140.0)]),
            result("p99", &[(first, 910.5)]),
            result("backlog", &[(first + 60_000, 2.0)]),
            // Outside the window: ignored.
            result(
                "stored",
                &[(first - MINUTE_MS, 99.0), (first + 180_000, 99.0)],
            ),
        ];
        let minutes = minutes_from(&results, &starts);
        assert_eq!(
            minutes,
            [
                FlowMinute {
                    start_ms: first,
                    enqueued: 10,
                    stored: 9,
                    failed_transient: 1,
                    latency_p50_ms: Some(140),
                    latency_p99_ms: Some(911),
                    ..FlowMinute::default()
                },
                FlowMinute {
                    start_ms: first + 60_000,
                    backlog: Some(2),
                    ..FlowMinute::default()
                },
                FlowMinute {
                    start_ms: first + 120_000,
                    enqueued: 4,
                    ..FlowMinute::default()
                },
            ]
        );
    }
}
