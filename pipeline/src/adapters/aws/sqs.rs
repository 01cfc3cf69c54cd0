//! The queue ports on Amazon SQS: sending (the enqueue function) and receiving and deleting
//! as the event source mapping does (the local runner on its AWS backend).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::anyhow;
use anyhow::Context as _;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, SendMessageBatchRequestEntry,
};
use futures::future::join_all;

use crate::domain::{Attributes, Outgoing, QueuedMessage};
use crate::ports::{MessageQueue, PortError, PortResult, QueueSource};

/// SQS's limit on messages per ReceiveMessage and per DeleteMessageBatch.
pub(super) const SQS_BATCH_MAX: usize = 10;
/// SQS's longest long poll.
const LONG_POLL_MAX: Duration = Duration::from_secs(20);

/// The queue ports on Amazon SQS: one `SendMessage` per accepted message; long-polled
/// `ReceiveMessage` and `DeleteMessageBatch` for a worker outside Lambda (the local runner).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        Self {
            client,
            // SQS requires a FIFO queue's name to end in `.fifo`, and its URL ends in the name.
            fifo: queue_url.ends_with(".fifo"),
            queue_url,
        }
    }

    async fn send_one(&self, outgoing: &Outgoing) -> anyhow::Result<()> {
        let sent = self.sending(outgoing);
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(sent.body)
            .set_message_attributes(sent.attributes)
            .set_message_system_attributes(sent.trace)
            .set_message_group_id(sent.group)
            .set_message_deduplication_id(sent.deduplication)
            .set_delay_seconds(sent.delay)
            .send()
            .await
            .context("SQS SendMessage failed")?;
        Ok(())
    }

    fn entry(
        &self,
        index: usize,
        outgoing: &Outgoing,
    ) -> anyhow::Result<SendMessageBatchRequestEntry> {
        let sent = self.sending(outgoing);
        Ok(SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(sent.body)
            .set_message_attributes(sent.attributes)
            .set_message_system_attributes(sent.trace)
            .set_message_group_id(sent.group)
            .set_message_deduplication_id(sent.deduplication)
            .set_delay_seconds(sent.delay)
            .build()?)
    }

    /// What SQS is sent for a message: on a FIFO queue its group and the job id as the
    /// deduplication id; on a standard queue its delay.
    fn sending(&self, outgoing: &Outgoing) -> Sending {
        let message = &outgoing.message;
        let delay = message.id.delay();
        Sending {
            body: QueuedMessage::body_of(message),
            attributes: message_attributes(&message.attributes),
            group: self.fifo.then(|| outgoing.fifo_group()),
            deduplication: self.fifo.then(|| message.id.to_string()),
            delay: (!self.fifo && !delay.is_none()).then(|| i32::from(delay.seconds())),
            trace: trace_header(),
        }
    }

    async fn send_entries(
        &self,
        call: &[usize],
        entries: &[Option<SendMessageBatchRequestEntry>],
    ) -> anyhow::Result<aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput> {
        self.client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(
                call.iter().filter_map(|&i| entries[i].clone()).collect(),
            ))
            .send()
            .await
            .context("SQS SendMessageBatch failed")
    }

    /// With a client of the shared configuration (see [`super::sdk_config`]).
    pub fn from_config(sdk: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(aws_sdk_sqs::Client::new(sdk), queue_url)
    }
}

#[async_trait]
impl MessageQueue for SqsQueue {
    /// One message: `SendMessage`. More: `SendMessageBatch` calls of at most 10 entries and
    /// [`BATCH_BYTES_MAX`], all at once. An entry that failed for a reason that is not the
    /// sender's (SQS's `SenderFault` false) is sent once more in a later call; then its error
    /// is its result.
    ///
    /// On a FIFO queue the calls go one after the other and nothing is sent again: SQS keeps
    /// a group's order across calls only when they are in order, and a retried entry would
    /// land behind the ones after it.
    ///
    /// The SDK retries throttling and transient errors of a call itself; a retry that
    /// duplicates a message is harmless because both copies carry the same job id (and, on a
    /// FIFO queue, the same deduplication id).
    async fn send_batch(&self, messages: &[Outgoing]) -> Vec<PortResult<()>> {
        if let [one] = messages {
            return vec![self.send_one(one).await.map_err(PortError::from)];
        }
        let mut results: Vec<anyhow::Result<()>> = Vec::with_capacity(messages.len());
        let mut entries = Vec::with_capacity(messages.len());
        let mut pending = Vec::with_capacity(messages.len());
        for (i, outgoing) in messages.iter().enumerate() {
            match self.entry(i, outgoing) {
                Ok(entry) => {
                    entries.push(Some(entry));
                    pending.push(i);
                    results.push(Err(anyhow!("SQS SendMessageBatch gave no answer")));
                }
                Err(error) => {
                    entries.push(None);
                    results.push(Err(error));
                }
            }
        }
        let attempts = if self.fifo { 1 } else { 2 };
        for _attempt in 0..attempts {
            let calls = batches(&pending, &entries);
            let answers = if self.fifo {
                let mut answers = Vec::with_capacity(calls.len());
                for call in &calls {
                    answers.push(self.send_entries(call, &entries).await);
                }
                answers
            } else {
                join_all(calls.iter().map(|call| self.send_entries(call, &entries))).await
            };
            pending = Vec::new();
            for (call, answer) in calls.iter().zip(answers) {
                match answer {
                    Err(error) => {
                        let error = format!("{error:#}");
                        for &i in call {
                            results[i] = Err(anyhow!("{error}"));
                        }
                    }
                    Ok(output) => {
                        for done in &output.successful {
                            if let Ok(i) = done.id.parse::<usize>() {
                                results[i] = Ok(());
                            }
                        }
                        for failed in &output.failed {
                            let Ok(i) = failed.id.parse::<usize>() else {
                                continue;
                            };
                            results[i] = Err(anyhow!(
                                "SQS refused the message: {} ({})",
                                failed.message.as_deref().unwrap_or("no reason given"),
                                failed.code
                            ));
                            if !failed.sender_fault {
                                pending.push(i);
                            }
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        results
            .into_iter()
            .map(|result| result.map_err(PortError::from))
            .collect()
    }

    fn is_fifo(&self) -> bool {
        self.fifo
    }
}

/// The fields of a `SendMessage` or of a `SendMessageBatch` entry.
struct Sending {
    body: String,
    attributes: Option<std::collections::HashMap<String, MessageAttributeValue>>,
    group: Option<String>,
    deduplication: Option<String>,
    delay: Option<i32>,
    trace: Option<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>>,
}

/// SQS's limit on the payload of one `SendMessageBatch` call (bodies and attributes), as of
/// 2025-08 (it was 256 KiB before).
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;

/// Splits `entries` (by index) into `SendMessageBatch` calls: at most [`SQS_BATCH_MAX`]
/// entries and [`BATCH_BYTES_MAX`] bytes each, in order.
pub(super) fn batches(
    indexes: &[usize],
    entries: &[Option<SendMessageBatchRequestEntry>],
) -> Vec<Vec<usize>> {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &i in indexes {
        let Some(entry) = &entries[i] else { continue };
        let size = payload_bytes(entry);
        let full = calls
            .last()
            .is_none_or(|call| call.len() == SQS_BATCH_MAX || bytes + size > BATCH_BYTES_MAX);
        if full {
            calls.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(call) = calls.last_mut() {
            call.push(i);
        }
    }
    calls
}

/// What SQS counts toward a message's size: the body, and each attribute's name, type and
/// value.
fn payload_bytes(entry: &SendMessageBatchRequestEntry) -> usize {
    let attributes: usize = entry
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, value)| {
            name.len() + value.data_type.len() + value.string_value.as_deref().map_or(0, str::len)
        })
        .sum();
    entry.message_body.len() + attributes
}

#[async_trait]
impl QueueSource for SqsQueue {
    async fn receive(&self, max: usize, wait: Duration) -> PortResult<Vec<SqsMessage>> {
        // SQS waits whole seconds: a shorter wait that is not zero rounds up, never down to a
        // short poll (a poller asking for 0.5 s in a loop would poll without waiting).
        let wait_seconds = wait.min(LONG_POLL_MAX).as_secs_f64().ceil() as u64;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, SQS_BATCH_MAX) as i32)
            .wait_time_seconds(wait_seconds as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .timeout_config(super::long_poll_budget(Duration::from_secs(wait_seconds))),
            )
            .send()
            .await
            .context("SQS ReceiveMessage failed")?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(lambda_record_of)
            .collect())
    }

    async fn delete(&self, receipt_handles: &[String]) -> PortResult<()> {
        for chunk in receipt_handles.chunks(SQS_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::from)?;
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("SQS DeleteMessageBatch failed")?;
            // A failed delete is not lost work: the message comes back and is stored again,
            // idempotently. Say so, and go on.
            if !output.failed.is_empty() {
                tracing::warn!(
                    failed = output.failed.len(),
                    "some deletes failed; those messages will be redelivered"
                );
            }
        }
        Ok(())
    }
}

/// A message's attributes as SQS `String` message attributes; none when it has none.
/// The X-Ray trace of this send, as SQS's `AWSTraceHeader` system attribute, which the
/// consumer's record reads back: the Lambda runtime puts the invocation's trace header in
/// `_X_AMZN_TRACE_ID`. SQS on AWS also takes it from the SDK's `X-Amzn-Trace-Id` header; the
/// attribute is what every SQS-compatible service keeps. It does not count towards the
/// message's size. None outside Lambda.
fn trace_header() -> Option<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>>
{
    let header = std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|h| !h.is_empty())?;
    let value = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()
        .ok()?;
    Some(HashMap::from([(
        MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    )]))
}

fn message_attributes(
    attributes: &Attributes,
) -> Option<std::collections::HashMap<String, MessageAttributeValue>> {
    if attributes.is_empty() {
        return None;
    }
    Some(
        attributes
            .iter()
            .filter_map(|(name, value)| {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .ok()?;
                Some((name.clone(), value))
            })
            .collect(),
    )
}

/// A received SQS message as the record of a Lambda SQS event.
pub fn lambda_record_of(message: aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id;
    record.receipt_handle = message.receipt_handle;
    record.body = message.body;
    record.md5_of_body = message.md5_of_body;
    record.event_source = Some("aws:sqs".to_owned());
    record.attributes = message
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.as_str().to_owned(), value))
        .collect();
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body_bytes: usize) -> Option<SendMessageBatchRequestEntry> {
        SendMessageBatchRequestEntry::builder()
            .id("x")
            .message_body("b".repeat(body_bytes))
            .build()
            .ok()
    }

    #[test]
    fn a_batch_call_holds_at_most_ten_entries_and_one_mebibyte_in_order() {
        let small: Vec<_> = (0..25).map(|_| entry(100)).collect();
        let all: Vec<usize> = (0..25).collect();
        let calls = batches(&all, &small);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        assert_eq!(calls.concat(), all);

        // The longest envelopes (32,768 characters, each escaped to 6 bytes): five a call.
        let large: Vec<_> = (0..10).map(|_| entry(32_768 * 6 + 100)).collect();
        let calls = batches(&(0..10).collect::<Vec<_>>(), &large);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5]);

        // An entry SQS will refuse anyway goes alone; none is dropped.
        let huge = vec![entry(10), entry(BATCH_BYTES_MAX + 1), entry(10)];
        assert_eq!(batches(&[0, 1, 2], &huge), [vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn attributes_count_toward_the_batch_size() {
        let with_attributes = SendMessageBatchRequestEntry::builder()
            .id("x")
            .message_body("body")
            .set_message_attributes(message_attributes(
                &Attributes::parse([("tenant".to_owned(), "acme".to_owned())].into()).unwrap(),
            ))
            .build()
            .unwrap();
        assert_eq!(payload_bytes(&with_attributes), 4 + 6 + 6 + 4);
    }
}
