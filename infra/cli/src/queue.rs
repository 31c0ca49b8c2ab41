//! The import queue locally: created as the template declares it (a dead-letter queue after
//! `maxReceiveCount` receives, the bucket's `ObjectCreated` notifications for `imports/*.csv`),
//! and a poller standing in for the SQS event source mapping of bulk-import: one message per
//! invocation, handed to the function's own entry point as the JSON Lambda delivers; messages
//! it reports in `batchItemFailures` stay in the queue and come back after a delay, the others
//! are deleted.

use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_config::SdkConfig;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use bulk_import::{Importer, SqsEvent};
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use rollcall::files::Bucket;
use serde_json::json;

/// Receives before a message goes to the dead-letter queue (as in the template).
pub const MAX_RECEIVE_COUNT: u32 = 5;

fn sqs_error(what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{what}: {e}")
}

/// Creates queue `name` with its dead-letter queue, and points the bucket's upload
/// notifications (`imports/` … `.csv`) at it. Returns the queue's URL.
pub async fn provision_import_queue(
    sdk: &SdkConfig,
    bucket: &Bucket,
    name: &str,
) -> anyhow::Result<String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| {
            sqs_error(
                "creating the dead-letter queue",
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    let dlq_url = dlq.queue_url.context("no dead-letter queue URL")?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
                .to_string(),
        )
        .send()
        .await
        .map_err(|e| {
            sqs_error(
                "creating the import queue",
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    let url = queue.queue_url.context("no import queue URL")?;
    let arn = queue_arn(&sqs, &url).await?;
    let filter =
        |name: FilterRuleName, value: &str| FilterRule::builder().name(name).value(value).build();
    let notification = QueueConfiguration::builder()
        .id("imports")
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(filter(FilterRuleName::Prefix, "imports/"))
                        .filter_rules(filter(FilterRuleName::Suffix, ".csv"))
                        .build(),
                )
                .build(),
        )
        .build()
        .map_err(|e| anyhow!("the bucket notification: {e}"))?;
    bucket
        .client()
        .put_bucket_notification_configuration()
        .bucket(bucket.name())
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(notification)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "the notification of bucket {}: {}",
                bucket.name(),
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
    Ok(url)
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            sqs_error(
                "reading a queue's ARN",
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    out.attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("a queue without an ARN")
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Messages handed to the function.
    pub delivered: usize,
    /// Messages the function asked to have delivered again.
    pub failed: usize,
}

/// The stand-in for the SQS event source mapping (batch size 1, `ReportBatchItemFailures`).
#[derive(Debug, Clone)]
pub struct QueuePoller {
    client: aws_sdk_sqs::Client,
    url: String,
    retry_after: Duration,
}

impl QueuePoller {
    /// Polls the queue at `url`; a failed message comes back after `retry_after` (the
    /// visibility timeout does this on AWS).
    pub fn new(sdk: &SdkConfig, url: impl Into<String>, retry_after: Duration) -> QueuePoller {
        QueuePoller {
            client: aws_sdk_sqs::Client::new(sdk),
            url: url.into(),
            retry_after,
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Receives at most one message, waiting up to `wait` for it, and hands it to `importer`.
    pub async fn poll(&self, importer: &Importer, wait: Duration) -> anyhow::Result<PollReport> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .send()
            .await
            .map_err(|e| {
                sqs_error(
                    "receiving from the import queue",
                    aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
        let mut report = PollReport::default();
        for message in out.messages.unwrap_or_default() {
            let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            // The record as Lambda delivers it, read through the function's event type.
            let record = json!({
                "messageId": id,
                "receiptHandle": receipt,
                "body": message.body().unwrap_or_default(),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body().unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "",
                "awsRegion": "",
            });
            let event: SqsEvent = serde_json::from_value(json!({ "Records": [record] }))
                .context("the SQS event shape")?;
            let response = importer
                .function_handler(LambdaEvent::new(event, LambdaContext::default()))
                .await
                .map_err(|e| anyhow!("bulk-import failed: {e}"))?;
            report.delivered += 1;
            if response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == id)
            {
                report.failed += 1;
                let seconds = i32::try_from(self.retry_after.as_secs()).unwrap_or(30);
                self.client
                    .change_message_visibility()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds)
                    .send()
                    .await
                    .map_err(|e| {
                        sqs_error(
                            "delaying a failed message",
                            aws_sdk_sqs::error::DisplayErrorContext(e),
                        )
                    })?;
            } else {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| {
                        sqs_error(
                            "deleting a handled message",
                            aws_sdk_sqs::error::DisplayErrorContext(e),
                        )
                    })?;
            }
        }
        Ok(report)
    }
}
