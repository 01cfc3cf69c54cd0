//! The consumer's redrive on SQS: backoffs as `ChangeMessageVisibilityBatch` on its own queue,
//! and records that can never be stored sent to the dead-letter queue with
//! `SendMessageBatch` (the consumer then reports them done, and Lambda deletes them).
//!
//! Why move a permanent failure ourselves rather than make it visible at once and let SQS's
//! redrive spend its remaining receives: it costs one invocation, not `maxReceiveCount` of
//! them; it reaches the dead-letter queue in the same invocation; on FIFO its group goes on
//! at once, where the records behind it would otherwise spend their receives with it and be
//! dead-lettered too; and its dead-letter retention starts when it is dead-lettered (SQS's
//! redrive keeps a standard message's enqueue time). The price: `sqs:SendMessage` on the
//! dead-letter queue for the consumer, and a copy in each queue if the function dies between
//! the send and Lambda's delete (the copy in the queue is moved again, so the job is in the
//! dead-letter queue twice: requeued, it is stored once; on FIFO the deduplication id keeps
//! one).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use futures::future::join_all;

use super::errors::port_error;
use super::sqs::{batches, SQS_BATCH_MAX};
use crate::ports::{PortError, PortResult, Redrive};

#[derive(Debug, Clone)]
pub struct SqsRedrive {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_queue_url: String,
}

impl SqsRedrive {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dead_letter_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
        }
    }

    /// With a client of the shared configuration (see [`super::sdk_config`]).
    pub fn from_config(
        sdk: &aws_config::SdkConfig,
        queue_url: impl Into<String>,
        dead_letter_queue_url: impl Into<String>,
    ) -> Self {
        Self::new(
            aws_sdk_sqs::Client::new(sdk),
            queue_url,
            dead_letter_queue_url,
        )
    }

    fn dead_letter_is_fifo(&self) -> bool {
        self.dead_letter_queue_url.ends_with(".fifo")
    }

    /// The dead-letter queue's copy of a record: its body and message attributes; on FIFO
    /// its group, and its message id as the deduplication id, so that a copy sent twice
    /// within five minutes (the function died before Lambda's delete) is kept once.
    fn entry(&self, index: usize, record: &SqsMessage) -> Option<SendMessageBatchRequestEntry> {
        let message_id = record.message_id.clone().unwrap_or_default();
        let fifo = self.dead_letter_is_fifo();
        let group = fifo.then(|| {
            record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_else(|| message_id.clone())
        });
        let attributes: HashMap<String, MessageAttributeValue> = record
            .message_attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), attribute_value(value)?)))
            .collect();
        SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(record.body.clone().unwrap_or_default())
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .set_message_group_id(group)
            .set_message_deduplication_id(fifo.then_some(message_id))
            .build()
            .ok()
    }
}

/// A Lambda record's message attribute as SQS takes it back.
fn attribute_value(value: &SqsMessageAttribute) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .set_data_type(value.data_type.clone())
        .set_string_value(value.string_value.clone())
        .set_binary_value(value.binary_value.as_ref().map(|b| Blob::new(b.0.clone())))
        .build()
        .ok()
}

#[async_trait]
impl Redrive for SqsRedrive {
    /// `ChangeMessageVisibilityBatch`, ten entries a call, the calls at once. An entry SQS
    /// refuses (a receipt that went stale) is logged: its record comes back after the
    /// visibility it had.
    async fn back_off(&self, waits: &[(String, Duration)]) -> PortResult<()> {
        let calls = waits.chunks(SQS_BATCH_MAX).map(|chunk| async move {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (receipt, wait))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(wait.as_secs().min(i32::MAX as u64) as i32)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PortError::permanent(anyhow::Error::from(e)))?;
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| port_error(e, "SQS ChangeMessageVisibilityBatch"))?;
            for failed in &output.failed {
                tracing::warn!(
                    code = %failed.code,
                    reason = failed.message.as_deref().unwrap_or_default(),
                    "a backoff was refused; that record comes back after its visibility timeout"
                );
            }
            Ok::<(), PortError>(())
        });
        join_all(calls).await.into_iter().collect()
    }

    /// `SendMessageBatch` to the dead-letter queue, in calls of at most ten entries and
    /// 1 MiB, one after the other on FIFO (a group's order across calls).
    async fn dead_letter(&self, records: &[SqsMessage]) -> Vec<PortResult<String>> {
        let entries: Vec<Option<SendMessageBatchRequestEntry>> = records
            .iter()
            .enumerate()
            .map(|(i, record)| self.entry(i, record))
            .collect();
        let mut results: Vec<PortResult<String>> = entries
            .iter()
            .map(|entry| match entry {
                Some(_) => Err(PortError::transient(anyhow::anyhow!(
                    "SQS SendMessageBatch (dead-letter queue) gave no answer"
                ))),
                None => Err(PortError::permanent(anyhow::anyhow!(
                    "the record cannot be sent to the dead-letter queue as it is"
                ))),
            })
            .collect();
        let all: Vec<usize> = (0..records.len()).collect();
        for call in batches(&all, &entries) {
            let answer = self
                .client
                .send_message_batch()
                .queue_url(&self.dead_letter_queue_url)
                .set_entries(Some(
                    call.iter().filter_map(|&i| entries[i].clone()).collect(),
                ))
                .send()
                .await;
            match answer {
                Err(error) => {
                    let error = port_error(error, "SQS SendMessageBatch (dead-letter queue)");
                    for &i in &call {
                        results[i] = Err(error.clone());
                    }
                }
                Ok(output) => {
                    for done in &output.successful {
                        if let Ok(i) = done.id.parse::<usize>() {
                            results[i] = Ok(done.message_id.clone());
                        }
                    }
                    for failed in &output.failed {
                        if let Ok(i) = failed.id.parse::<usize>() {
                            let cause = anyhow::anyhow!(
                                "the dead-letter queue refused the record: {} ({})",
                                failed.message.as_deref().unwrap_or("no reason given"),
                                failed.code
                            );
                            // SQS says whose fault it was: a sender's fault will not pass.
                            results[i] = Err(if failed.sender_fault {
                                PortError::permanent(cause)
                            } else {
                                PortError::transient(cause)
                            });
                        }
                    }
                }
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn record(id: &str, body: &str, group: Option<&str>) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.into());
        record.receipt_handle = Some(format!("receipt-{id}"));
        record.body = Some(body.into());
        if let Some(group) = group {
            record
                .attributes
                .insert("MessageGroupId".into(), group.into());
        }
        record
    }

    #[tokio::test]
    async fn backoffs_go_in_calls_of_ten_each_with_its_own_wait() {
        let visibility = mock!(aws_sdk_sqs::Client::change_message_visibility_batch)
            .match_requests(|request| {
                let entries = request.entries();
                request.queue_url() == Some("https://sqs/queue")
                    && entries.len() <= 10
                    && entries.iter().all(|e| {
                        let n: i32 = e
                            .receipt_handle()
                            .trim_start_matches("receipt-")
                            .parse()
                            .unwrap();
                        e.visibility_timeout() == Some(n * 10)
                    })
            })
            .then_output(|| {
                ChangeMessageVisibilityBatchOutput::builder()
                    .set_successful(Some(vec![]))
                    .set_failed(Some(vec![]))
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&visibility]);
        let redrive = SqsRedrive::new(client, "https://sqs/queue", "https://sqs/dead");
        let waits: Vec<(String, Duration)> = (1..=12)
            .map(|n| (format!("receipt-{n}"), Duration::from_secs(n * 10)))
            .collect();

        redrive.back_off(&waits).await.unwrap();

        assert_eq!(visibility.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_refused_backoff_call_is_an_error_of_its_class() {
        let denied = mock!(aws_sdk_sqs::Client::change_message_visibility_batch).then_error(|| {
            aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchError::generic(
                aws_sdk_sqs::error::ErrorMetadata::builder().code("AccessDenied").build(),
            )
        });
        let client = mock_client!(aws_sdk_sqs, [&denied]);
        let redrive = SqsRedrive::new(client, "https://sqs/queue", "https://sqs/dead");

        let error = redrive
            .back_off(&[("receipt-1".into(), Duration::from_secs(30))])
            .await
            .unwrap_err();

        assert_eq!(error.class, crate::domain::FailureClass::Deployment);
    }

    #[tokio::test]
    async fn a_dead_letter_keeps_its_body_and_on_fifo_its_group_and_message_id() {
        let send = mock!(aws_sdk_sqs::Client::send_message_batch)
            .match_requests(|request| {
                let entries = request.entries();
                request.queue_url() == Some("https://sqs/dead.fifo")
                    && entries.len() == 2
                    && entries[0].message_body() == "hello raw"
                    && entries[0].message_group_id() == Some("g1")
                    && entries[0].message_deduplication_id() == Some("m1")
                    && entries[1].message_group_id() == Some("m2")
            })
            .then_output(|| {
                SendMessageBatchOutput::builder()
                    .successful(
                        SendMessageBatchResultEntry::builder()
                            .id("0")
                            .message_id("dead-1")
                            .md5_of_message_body("x")
                            .build()
                            .unwrap(),
                    )
                    .failed(
                        BatchResultErrorEntry::builder()
                            .id("1")
                            .code("InvalidMessageContents")
                            .sender_fault(true)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_sqs, [&send]);
        let redrive = SqsRedrive::new(client, "https://sqs/queue.fifo", "https://sqs/dead.fifo");

        let results = redrive
            .dead_letter(&[
                record("m1", "hello raw", Some("g1")),
                record("m2", "other", None),
            ])
            .await;

        assert_eq!(send.num_calls(), 1);
        assert_eq!(results[0].as_ref().unwrap(), "dead-1");
        let refused = results[1].as_ref().unwrap_err();
        assert_eq!(refused.class, crate::domain::FailureClass::Permanent);
        assert!(refused.to_string().contains("InvalidMessageContents"));
    }
}
