//! The operations port on SQS and DynamoDB: counts from `GetQueueAttributes` and
//! `DescribeTable`, the dead-letter listing from the failure notes, and moving messages back.
//!
//! Requeue-all asks SQS for a move task (`StartMessageMoveTask`: SQS moves the whole
//! dead-letter queue itself, at a bounded rate). Where the endpoint does not have it (an
//! emulator answers `InvalidAction`), messages move one by one: receive from the dead-letter
//! queue, send to the queue, delete from the dead-letter queue only once the send succeeded.
//! A crash between the send and the delete leaves the job in both queues, under one job id:
//! the consumer's first-write-wins put makes that one stored message, never a second job.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message as SqsMessage, MessageSystemAttributeName,
    QueueAttributeName,
};
use tokio::time::Instant;

use super::DynamoDbStore;
use crate::clock::{Clock, SystemClock};
use crate::domain::{DeadLetterId, FlowMinute, HistoryWindow, JobId, QueuedMessage};
use crate::ports::{
    Count, DeadLetterPage, OneDeadLetter, Operations, PipelineStats, PortError, PortResult,
    QueueCounts, RequeueAll,
};

/// SQS's limit on messages per receive.
const RECEIVE_MAX: i32 = 10;
/// How long a message received from the dead-letter queue stays hidden while it is moved.
const MOVE_VISIBILITY_SECS: i32 = 60;
/// Receives a search of the dead-letter queue for one job makes at most.
const SEARCH_RECEIVES_MAX: usize = 100;
/// How far back the age metric is looked for: a few of SQS's one-minute datapoints.
const AGE_LOOKBACK: Duration = Duration::from_secs(5 * 60);
/// Messages a second the move task moves: well under what the consumer drains, so that a
/// large redrive levels into the queue instead of flooding it.
pub const MOVE_TASK_RATE: i32 = 100;

/// The operations port on SQS and DynamoDB.
#[derive(Debug, Clone)]
pub struct AwsOperations {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_queue_url: String,
    store: DynamoDbStore,
    /// Where the queue's age metric is read; none where there is no CloudWatch to ask.
    cloudwatch: Option<aws_sdk_cloudwatch::Client>,
    /// The end of the window the age metric is read over.
    clock: Arc<dyn Clock>,
    /// Whose metrics the flow history reads; none: the history has no counts.
    flow: Option<super::FlowSources>,
}

impl AwsOperations {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dead_letter_queue_url: impl Into<String>,
        store: DynamoDbStore,
    ) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
            store,
            cloudwatch: None,
            clock: Arc::new(SystemClock),
            flow: None,
        }
    }

    /// Reads the flow history from these functions' and this queue's metrics.
    pub fn with_flow(mut self, flow: Option<super::FlowSources>) -> Self {
        self.flow = flow;
        self
    }

    /// Reads the age of the oldest queued message from CloudWatch.
    pub fn with_cloudwatch(mut self, client: aws_sdk_cloudwatch::Client) -> Self {
        self.cloudwatch = Some(client);
        self
    }

    /// SQS's `ApproximateAgeOfOldestMessage` over the last few minutes, the newest value.
    /// SQS publishes it once a minute, as a metric only: `None` when CloudWatch has no
    /// datapoint yet (a new or idle queue, an emulator) or cannot be asked, which never fails
    /// the stats.
    async fn oldest_age_seconds(&self) -> Option<u64> {
        let client = self.cloudwatch.as_ref()?;
        let queue_name = self.queue_url.rsplit('/').next()?.to_owned();
        let now = DateTime::from_millis(self.clock.now_ms());
        let start = DateTime::from_millis(now.to_millis().ok()? - AGE_LOOKBACK.as_millis() as i64);
        let query = MetricDataQuery::builder()
            .id("age")
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("AWS/SQS")
                            .metric_name("ApproximateAgeOfOldestMessage")
                            .dimensions(
                                Dimension::builder()
                                    .name("QueueName")
                                    .value(queue_name)
                                    .build(),
                            )
                            .build(),
                    )
                    .period(60)
                    .stat("Maximum")
                    .build(),
            )
            .build();
        let output = client
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(start)
            .end_time(now)
            .scan_by(ScanBy::TimestampDescending)
            .send()
            .await;
        match output {
            Ok(output) => output
                .metric_data_results()
                .first()
                .and_then(|result| result.values().first().copied())
                .map(|seconds| seconds.max(0.0) as u64),
            Err(error) => {
                tracing::warn!(error = %aws_sdk_cloudwatch::error::DisplayErrorContext(&error), "reading the queue's age from CloudWatch failed");
                None
            }
        }
    }

    /// With clients of the shared configuration (see [`super::sdk_config`]), CloudWatch's
    /// included.
    pub fn from_config(sdk: &aws_config::SdkConfig, config: &crate::config::OperateConfig) -> Self {
        Self::new(
            aws_sdk_sqs::Client::new(sdk),
            &config.queue_url,
            &config.dead_letter_queue_url,
            DynamoDbStore::from_config(sdk, &config.table_name),
        )
        .with_cloudwatch(aws_sdk_cloudwatch::Client::new(sdk))
        .with_flow(config.flow.clone())
    }

    async fn attributes(
        &self,
        url: &str,
        names: &[QueueAttributeName],
    ) -> anyhow::Result<std::collections::HashMap<QueueAttributeName, String>> {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .context("SQS GetQueueAttributes failed")?;
        Ok(output.attributes.unwrap_or_default())
    }

    async fn arn(&self, url: &str) -> anyhow::Result<String> {
        self.attributes(url, &[QueueAttributeName::QueueArn])
            .await?
            .remove(&QueueAttributeName::QueueArn)
            .context("SQS returned no QueueArn")
    }

    /// Up to ten messages of the dead-letter queue, hidden while they are handled.
    async fn receive_dead(&self) -> anyhow::Result<Vec<SqsMessage>> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.dead_letter_queue_url)
            .max_number_of_messages(RECEIVE_MAX)
            .visibility_timeout(MOVE_VISIBILITY_SECS)
            .wait_time_seconds(0)
            // What a requeue must carry over: a FIFO message's group, and the attributes.
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await
            .context("SQS ReceiveMessage (dead-letter queue) failed")?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Sends a dead letter's body back to the queue, then deletes it from the dead-letter
    /// queue: never the other way round, so a failure in between duplicates, never loses.
    ///
    /// To a FIFO queue it goes back in its group, under a fresh deduplication id: its job id
    /// was seen within the last five minutes perhaps, and SQS would drop it as a duplicate.
    async fn move_back(&self, message: &SqsMessage) -> anyhow::Result<()> {
        let body = message.body.as_deref().unwrap_or_default();
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_attributes(message.message_attributes.clone());
        if self.queue_url.ends_with(".fifo") {
            let group = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            send = send
                .message_group_id(group)
                .message_deduplication_id(uuid::Uuid::new_v4().to_string());
        }
        send.send()
            .await
            .context("SQS SendMessage (requeue) failed")?;
        self.delete_dead(message).await
    }

    /// Finds one dead letter (by its job, or a raw one by its message id) and requeues or
    /// deletes it. SQS has no lookup by content: receive the dead-letter queue until it shows
    /// up or every message has been seen, then release the others at once.
    async fn act_on_one(&self, id: &DeadLetterId, act: Act) -> anyhow::Result<OneDeadLetter> {
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        let mut outcome = None;
        for _ in 0..SEARCH_RECEIVES_MAX {
            let messages = self.receive_dead().await?;
            let fresh: Vec<SqsMessage> = messages
                .into_iter()
                .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for message in fresh {
                if outcome.is_none() && names(&message, id) {
                    outcome = Some(match act {
                        Act::Requeue => self.move_back(&message).await,
                        Act::Delete => self.delete_dead(&message).await,
                    });
                } else {
                    held.push(message);
                }
            }
            if outcome.is_some() {
                break;
            }
        }
        self.release(&held).await;
        match outcome {
            Some(done) => {
                done?;
                self.store.forget_failures(std::slice::from_ref(id)).await?;
                Ok(OneDeadLetter::Done)
            }
            None if match id.job() {
                Some(job) => crate::ports::FailureLog::failure(&self.store, job)
                    .await?
                    .is_some(),
                None => false,
            } =>
            {
                Ok(OneDeadLetter::NotYetDeadLettered)
            }
            None => Ok(OneDeadLetter::NotFound),
        }
    }

    async fn delete_dead(&self, message: &SqsMessage) -> anyhow::Result<()> {
        if let Some(receipt) = &message.receipt_handle {
            self.sqs
                .delete_message()
                .queue_url(&self.dead_letter_queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .context("SQS DeleteMessage (dead-letter queue) failed")?;
        }
        Ok(())
    }

    /// Makes messages received during a search visible again at once.
    async fn release(&self, messages: &[SqsMessage]) {
        for chunk in messages.chunks(RECEIVE_MAX as usize) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle.clone())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            // Failing to release only delays those messages by the move visibility timeout.
            if let Err(error) = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.dead_letter_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "releasing searched dead letters failed; they reappear after {MOVE_VISIBILITY_SECS} s");
            }
        }
    }

    /// Asks SQS to move the whole dead-letter queue back; `None` when the endpoint has no
    /// move tasks.
    async fn start_move_task(&self) -> anyhow::Result<Option<String>> {
        let source = self.arn(&self.dead_letter_queue_url).await?;
        let destination = self.arn(&self.queue_url).await?;
        let started = self
            .sqs
            .start_message_move_task()
            .source_arn(source)
            .destination_arn(destination)
            .max_number_of_messages_per_second(MOVE_TASK_RATE)
            .send()
            .await;
        match started {
            Ok(output) => Ok(Some(output.task_handle.unwrap_or_default())),
            Err(error)
                if matches!(
                    aws_sdk_sqs::error::ProvideErrorMetadata::code(&error),
                    Some(
                        "InvalidAction"
                            | "UnsupportedOperation"
                            | "AWS.SimpleQueueService.UnsupportedOperation"
                    )
                ) =>
            {
                tracing::info!(
                    "the endpoint has no StartMessageMoveTask; moving messages one by one"
                );
                Ok(None)
            }
            Err(error) => Err(anyhow::Error::new(error).context("SQS StartMessageMoveTask failed")),
        }
    }
}

/// What to do with the one dead letter a search finds.
#[derive(Debug, Clone, Copy)]
enum Act {
    Requeue,
    Delete,
}

fn job_of(message: &SqsMessage) -> Option<JobId> {
    QueuedMessage::job_id_of(message.body.as_deref()?)
}

/// Whether a dead-letter queue message is the dead letter `id`.
fn names(message: &SqsMessage, id: &DeadLetterId) -> bool {
    match id {
        DeadLetterId::Job(job) => job_of(message) == Some(*job),
        DeadLetterId::Raw(message_id) => message.message_id.as_deref() == Some(message_id),
    }
}

fn count(
    attributes: &std::collections::HashMap<QueueAttributeName, String>,
    name: QueueAttributeName,
) -> u64 {
    attributes
        .get(&name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl Operations for AwsOperations {
    async fn stats(&self) -> PortResult<PipelineStats> {
        use QueueAttributeName as A;
        let queue_names = [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ];
        let counts = async {
            tokio::try_join!(
                self.attributes(&self.queue_url, &queue_names),
                self.attributes(
                    &self.dead_letter_queue_url,
                    &[A::ApproximateNumberOfMessages]
                ),
                self.store.describe_item_count(),
            )
        };
        let (counts, oldest_age_seconds) = tokio::join!(counts, self.oldest_age_seconds());
        let (queue, dead, table) = counts?;
        Ok(PipelineStats {
            queue: QueueCounts {
                visible: count(&queue, A::ApproximateNumberOfMessages),
                in_flight: count(&queue, A::ApproximateNumberOfMessagesNotVisible),
                delayed: count(&queue, A::ApproximateNumberOfMessagesDelayed),
                // SQS publishes it as the CloudWatch metric ApproximateAgeOfOldestMessage
                // only (the template's backlog alarm watches it), not as a queue attribute.
                oldest_age_seconds,
                approximate: true,
            },
            dead_letter_queue: Count {
                count: count(&dead, A::ApproximateNumberOfMessages),
                approximate: true,
            },
            // DescribeTable's ItemCount, refreshed by DynamoDB about every six hours; it
            // includes the failure notes and attempts. Counting exactly would read the whole table.
            stored: Count {
                count: table,
                approximate: true,
            },
        })
    }

    /// CloudWatch's, from the functions' EMF metrics and SQS's queue depth; without
    /// CloudWatch or the functions' names, every minute with nothing known.
    async fn history(&self, window: HistoryWindow) -> PortResult<Vec<FlowMinute>> {
        let now = self.clock.now_ms_u64();
        match (&self.cloudwatch, &self.flow) {
            (Some(client), Some(sources)) => {
                Ok(super::flow_history::read(client, sources, window, now).await?)
            }
            _ => Ok(window
                .minute_starts(now)
                .map(|start_ms| FlowMinute {
                    start_ms,
                    ..FlowMinute::default()
                })
                .collect()),
        }
    }

    async fn dead_letters(
        &self,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> PortResult<DeadLetterPage> {
        self.store
            .dead_letter_notes(limit, before)
            .await
            .map_err(PortError::from)
    }

    async fn requeue(&self, id: JobId) -> PortResult<OneDeadLetter> {
        self.act_on_one(&DeadLetterId::Job(id), Act::Requeue)
            .await
            .map_err(PortError::from)
    }

    async fn delete_dead_letter(&self, id: DeadLetterId) -> PortResult<OneDeadLetter> {
        self.act_on_one(&id, Act::Delete)
            .await
            .map_err(PortError::from)
    }

    /// Searches the dead-letter queue only for a job with a failure note (a job that never
    /// failed is not there), then forgets the note whatever the search found.
    async fn erase(&self, id: JobId) -> PortResult<()> {
        if crate::ports::FailureLog::failure(&self.store, id)
            .await?
            .is_none()
        {
            return Ok(());
        }
        let letter = DeadLetterId::Job(id);
        // Found and deleted, the note went with it; otherwise it goes now.
        if self.act_on_one(&letter, Act::Delete).await? != OneDeadLetter::Done {
            self.store
                .forget_failures(std::slice::from_ref(&letter))
                .await?;
        }
        Ok(())
    }

    /// SQS's move task when the dead-letter queue holds only jobs (as far as the notes say);
    /// else, and where the endpoint has no move task, one message at a time, leaving the raw
    /// ones (held out of sight while the call runs, released at its end).
    async fn requeue_all(&self, budget: Duration) -> PortResult<RequeueAll> {
        let noted = self.store.all_failure_ids().await?;
        let raw_noted = noted.iter().any(|id| id.job().is_none());
        if !raw_noted {
            if let Some(task) = self.start_move_task().await? {
                self.store.forget_failures(&noted).await?;
                return Ok(RequeueAll {
                    moved: 0,
                    done: true,
                    move_task: Some(task),
                    left: 0,
                });
            }
        }
        let deadline = Instant::now() + budget;
        let mut moved = 0;
        let mut raw: Vec<SqsMessage> = Vec::new();
        let mut seen_raw = HashSet::new();
        let mut done = false;
        while Instant::now() < deadline {
            let messages = self.receive_dead().await?;
            if messages.is_empty() {
                done = true;
                break;
            }
            let mut jobs = Vec::new();
            for message in messages {
                match job_of(&message) {
                    Some(job) => {
                        self.move_back(&message).await?;
                        jobs.push(DeadLetterId::Job(job));
                        moved += 1;
                    }
                    None => {
                        if seen_raw.insert(message.message_id.clone().unwrap_or_default()) {
                            raw.push(message);
                        }
                    }
                }
            }
            self.store.forget_failures(&jobs).await?;
        }
        self.release(&raw).await;
        Ok(RequeueAll {
            moved,
            done,
            move_task: None,
            left: raw.len() as u64,
        })
    }

    async fn purge_dead_letters(&self) -> PortResult<()> {
        self.sqs
            .purge_queue()
            .queue_url(&self.dead_letter_queue_url)
            .send()
            .await
            .context("SQS PurgeQueue failed")?;
        let noted = self.store.all_failure_ids().await?;
        self.store
            .forget_failures(&noted)
            .await
            .map_err(PortError::from)
    }
}

#[cfg(test)]
mod tests {
    //! The two requeue-all paths against a fake of the SQS API built from its documented
    //! requests and answers (the emulator has no `StartMessageMoveTask`).
    use std::sync::{Arc, Mutex};

    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_sqs::error::ErrorMetadata;
    use aws_sdk_sqs::operation::delete_message::DeleteMessageOutput;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput;
    use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use aws_sdk_sqs::operation::start_message_move_task::{
        StartMessageMoveTaskError, StartMessageMoveTaskOutput,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;
    use crate::domain::{ContentLimit, Message, MessageContent};

    const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/messages";
    const DLQ: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/messages-dlq";

    fn arn_of(url: &str) -> String {
        let name = url.rsplit('/').next().unwrap_or_default();
        format!("arn:aws:sqs:eu-west-1:111122223333:{name}")
    }

    /// A table with no failure notes.
    fn empty_table() -> DynamoDbStore {
        let query = mock!(aws_sdk_dynamodb::Client::query)
            .then_output(|| QueryOutput::builder().set_items(Some(Vec::new())).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query]);
        DynamoDbStore::new(client, "table")
    }

    fn queue_arns() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_sqs::Client::get_queue_attributes).then_compute_output(|request| {
            let url = request.queue_url().unwrap_or_default().to_owned();
            GetQueueAttributesOutput::builder()
                .attributes(QueueAttributeName::QueueArn, arn_of(&url))
                .build()
        })
    }

    #[tokio::test]
    async fn requeue_all_asks_sqs_for_a_move_task_from_the_dlq_to_the_queue_at_a_bounded_rate() {
        let arns = queue_arns();
        let start = mock!(aws_sdk_sqs::Client::start_message_move_task)
            .match_requests(|r| {
                r.source_arn() == Some(&arn_of(DLQ))
                    && r.destination_arn() == Some(&arn_of(QUEUE))
                    && r.max_number_of_messages_per_second() == Some(MOVE_TASK_RATE)
            })
            .then_output(|| {
                // The answer in the SQS API reference's example.
                StartMessageMoveTaskOutput::builder()
                    .task_handle("eyJ0YXNrSWQiOiJkYzE2OWUwNC0wZTU1LTQ0ZDItYWE5MC1jMDgwY2ExZjM2ZjciLCJzb3VyY2VBcm4iOiJhcm46YXdzOnNxczp1cy1lYXN0LTE6MTExMTIyMjIzMzMzOk15RGVhZExldHRlclF1ZXVlIn0=")
                    .build()
            });
        let receive = mock!(aws_sdk_sqs::Client::receive_message)
            .then_output(|| ReceiveMessageOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&arns, &start, &receive]);

        let outcome = AwsOperations::new(sqs, QUEUE, DLQ, empty_table())
            .requeue_all(Duration::from_secs(1))
            .await
            .unwrap();

        assert_eq!(start.num_calls(), 1);
        assert_eq!(receive.num_calls(), 0, "SQS moves the messages itself");
        assert!(outcome.done);
        assert!(outcome.move_task.unwrap().starts_with("eyJ0YXNrSWQi"));
    }

    #[tokio::test]
    async fn the_oldest_message_age_is_sqs_s_newest_cloudwatch_datapoint_and_none_without_one() {
        use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
        use aws_sdk_cloudwatch::types::MetricDataResult;
        let with_points = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                let stat = r.metric_data_queries()[0].metric_stat().unwrap();
                let metric = stat.metric().unwrap();
                metric.namespace() == Some("AWS/SQS")
                    && metric.metric_name() == Some("ApproximateAgeOfOldestMessage")
                    && metric.dimensions()[0].value() == Some("messages")
                    && stat.stat() == Some("Maximum")
                    && r.scan_by() == Some(&ScanBy::TimestampDescending)
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("age")
                            .values(312.0)
                            .values(250.0)
                            .build(),
                    )
                    .build()
            });
        let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&with_points]);
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&queue_arns()]);
        let operations =
            AwsOperations::new(sqs, QUEUE, DLQ, empty_table()).with_cloudwatch(cloudwatch);
        assert_eq!(operations.oldest_age_seconds().await, Some(312));

        let empty = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .then_output(|| GetMetricDataOutput::builder().build());
        let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&empty]);
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&queue_arns()]);
        let operations =
            AwsOperations::new(sqs, QUEUE, DLQ, empty_table()).with_cloudwatch(cloudwatch);
        assert_eq!(operations.oldest_age_seconds().await, None);
    }

    #[tokio::test]
    async fn without_move_tasks_each_message_is_sent_to_the_queue_before_it_leaves_the_dlq() {
        let message =
            Message::accept(MessageContent::parse("m".into(), ContentLimit::DEFAULT).unwrap());
        let body = QueuedMessage::body_of(&message);
        let calls = Arc::new(Mutex::new(Vec::<String>::new()));
        let arns = queue_arns();
        let missing = mock!(aws_sdk_sqs::Client::start_message_move_task).then_error(|| {
            StartMessageMoveTaskError::generic(
                ErrorMetadata::builder()
                    .code("InvalidAction")
                    .message("The action StartMessageMoveTask is not valid for this endpoint.")
                    .build(),
            )
        });
        let delivered = Arc::new(Mutex::new(false));
        let receive = {
            let delivered = delivered.clone();
            mock!(aws_sdk_sqs::Client::receive_message).then_compute_output(move |r| {
                assert_eq!(r.queue_url(), Some(DLQ));
                let first = !std::mem::replace(&mut *delivered.lock().unwrap(), true);
                let messages = first.then(|| {
                    vec![aws_sdk_sqs::types::Message::builder()
                        .message_id("m-1")
                        .receipt_handle("r-1")
                        .body(body.clone())
                        .build()]
                });
                ReceiveMessageOutput::builder()
                    .set_messages(messages)
                    .build()
            })
        };
        let send = {
            let calls = calls.clone();
            mock!(aws_sdk_sqs::Client::send_message)
                .match_requests(move |r| {
                    calls
                        .lock()
                        .unwrap()
                        .push(format!("send to {}", r.queue_url().unwrap_or_default()));
                    true
                })
                .then_output(|| SendMessageOutput::builder().message_id("m-2").build())
        };
        let delete = {
            let calls = calls.clone();
            mock!(aws_sdk_sqs::Client::delete_message)
                .match_requests(move |r| {
                    calls.lock().unwrap().push(format!(
                        "delete {} from {}",
                        r.receipt_handle().unwrap_or_default(),
                        r.queue_url().unwrap_or_default()
                    ));
                    true
                })
                .then_output(|| DeleteMessageOutput::builder().build())
        };
        let sqs = mock_client!(
            aws_sdk_sqs,
            RuleMode::MatchAny,
            [&arns, &missing, &receive, &send, &delete]
        );
        let forget = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_output(|| {
            aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput::builder().build()
        });
        let no_notes = mock!(aws_sdk_dynamodb::Client::query)
            .then_output(|| QueryOutput::builder().set_items(Some(vec![])).build());
        let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&forget, &no_notes]);

        let outcome = AwsOperations::new(sqs, QUEUE, DLQ, DynamoDbStore::new(dynamodb, "t"))
            .requeue_all(Duration::from_secs(5))
            .await
            .unwrap();

        assert_eq!(
            outcome,
            RequeueAll {
                moved: 1,
                done: true,
                move_task: None,
                left: 0
            }
        );
        assert_eq!(
            *calls.lock().unwrap(),
            [format!("send to {QUEUE}"), format!("delete r-1 from {DLQ}")]
        );
        assert_eq!(forget.num_calls(), 1, "the job's failure note is removed");
    }
}
