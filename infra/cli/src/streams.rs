//! The local stand-in for the DynamoDB stream event source mapping of send-invitations.
//!
//! It reads the table's stream from moto, writes each record as the JSON Lambda would deliver,
//! keeps only records the template's `FilterCriteria` match, hands batches of the template's
//! `BatchSize` to the function's own entry point (JSON in, typed event out), and on reported
//! item failures retries from the first failed record, at most `MaximumRetryAttempts` times,
//! as Lambda does with `ReportBatchItemFailures`. A batch whose invocation fails outright is cut
//! in two (`BisectBatchOnFunctionError`). The settings are read from `infra/template.yaml`
//! itself, so the local stack can't drift from what AWS runs.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use send_invitations::{Incoming, Outgoing, Sender};
use serde_json::{Value, json};

/// The template, compiled in: the mapping's settings are read from it.
const TEMPLATE: &str = include_str!("../../template.yaml");

/// The event source mapping's settings, as the template declares them.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    /// Records per invocation.
    pub batch_size: usize,
    /// Retries of a failing batch before it is dropped (to the on-failure destination on AWS).
    pub max_retries: u32,
    /// Whether a failing invocation is split in two.
    pub bisect: bool,
    /// The filter patterns; a record passes if any matches.
    pub filters: Vec<Value>,
}

impl MappingSettings {
    /// Reads the DynamoDB event of `function` in the template.
    pub fn from_template(function: &str) -> anyhow::Result<MappingSettings> {
        let doc: Value = serde_norway::from_str(TEMPLATE).context("parsing infra/template.yaml")?;
        let events = doc["Resources"][function]["Properties"]["Events"]
            .as_object()
            .ok_or_else(|| anyhow!("{function} has no Events in the template"))?;
        let props = events
            .values()
            .find(|e| e["Type"] == "DynamoDB")
            .map(|e| &e["Properties"])
            .ok_or_else(|| anyhow!("{function} has no DynamoDB event in the template"))?;
        let mut filters = Vec::new();
        for f in props["FilterCriteria"]["Filters"]
            .as_array()
            .ok_or_else(|| anyhow!("the DynamoDB event of {function} has no filters"))?
        {
            let pattern = f["Pattern"]
                .as_str()
                .ok_or_else(|| anyhow!("a filter of {function} has no Pattern"))?;
            filters.push(serde_json::from_str(pattern).context("a filter pattern is not JSON")?);
        }
        let number = |name: &str| {
            props[name]
                .as_u64()
                .ok_or_else(|| anyhow!("the DynamoDB event of {function} has no {name}"))
        };
        Ok(MappingSettings {
            batch_size: usize::try_from(number("BatchSize")?)?,
            max_retries: u32::try_from(number("MaximumRetryAttempts")?)?,
            bisect: props["BisectBatchOnFunctionError"].as_bool() == Some(true),
            filters,
        })
    }

    /// Whether `record` (Lambda's JSON) passes the filters.
    pub fn passes(&self, record: &Value) -> anyhow::Result<bool> {
        for f in &self.filters {
            if matches(f, record)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Matches an event-filtering pattern (the subset of the EventBridge pattern language Lambda
/// accepts: exact values, `prefix`, `exists`, `anything-but`) against a JSON value.
pub fn matches(pattern: &Value, value: &Value) -> anyhow::Result<bool> {
    let Some(fields) = pattern.as_object() else {
        bail!("a filter pattern must be an object, found {pattern}");
    };
    for (name, want) in fields {
        let got = value.get(name);
        let ok = match want {
            Value::Object(_) => match got {
                Some(inner @ Value::Object(_)) => matches(want, inner)?,
                _ => false,
            },
            Value::Array(options) => {
                let mut any = false;
                for option in options {
                    if matches_one(option, got)? {
                        any = true;
                        break;
                    }
                }
                any
            }
            other => bail!("filter values must be arrays or objects, found {other}"),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn matches_one(option: &Value, got: Option<&Value>) -> anyhow::Result<bool> {
    match option {
        Value::Object(rule) => {
            let (kind, arg) = rule
                .iter()
                .next()
                .ok_or_else(|| anyhow!("an empty filter rule"))?;
            match (kind.as_str(), arg) {
                ("prefix", Value::String(p)) => Ok(got
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with(p))),
                ("exists", Value::Bool(e)) => Ok(got.is_some() == *e),
                ("anything-but", Value::Array(not)) => {
                    Ok(got.is_some_and(|g| !not.iter().any(|n| n == g)))
                }
                ("anything-but", single) => Ok(got.is_some_and(|g| g != single)),
                _ => bail!("filter rule {kind} is not supported by the local stack"),
            }
        }
        Value::Null => Ok(got.is_none_or(Value::is_null)),
        exact => Ok(got == Some(exact)),
    }
}

/// A stream record's image as the event's item type.
fn image(m: &Option<std::collections::HashMap<String, AttributeValue>>) -> serde_dynamo::Item {
    let values: std::collections::HashMap<String, serde_dynamo::AttributeValue> = m
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), serde_dynamo::AttributeValue::from(v.clone())))
        .collect();
    serde_dynamo::Item::from(values)
}

/// One stream record as Lambda delivers it: the stream API's record turned into
/// `aws_lambda_events`' `EventRecord`, then written as the JSON Lambda sends (which the filter
/// reads and the function's entry point parses).
pub fn record_json(r: &Record, stream_arn: &str) -> anyhow::Result<Value> {
    let mut record = EventRecord::default();
    record.event_id = r.event_id.clone().unwrap_or_default();
    record.event_name = r
        .event_name
        .as_ref()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    record.event_version = Some(r.event_version.clone().unwrap_or_else(|| "1.1".into()));
    record.event_source = Some("aws:dynamodb".into());
    record.aws_region = r
        .aws_region
        .clone()
        .unwrap_or_else(|| crate::local::LOCAL_REGION.into());
    record.event_source_arn = Some(stream_arn.to_owned());
    if let Some(s) = &r.dynamodb {
        if let Some(t) = s.approximate_creation_date_time {
            record.change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(t.secs(), 0).unwrap_or_default();
        }
        record.change.keys = image(&s.keys);
        record.change.new_image = image(&s.new_image);
        record.change.old_image = image(&s.old_image);
        record.change.sequence_number = s.sequence_number.clone();
        record.change.size_bytes = s.size_bytes.unwrap_or_default();
        record.change.stream_view_type = s
            .stream_view_type
            .as_ref()
            .map(|v| serde_json::from_value(json!(v.as_str())))
            .transpose()
            .context("the stream view type")?;
    }
    serde_json::to_value(record).context("writing a stream record as JSON")
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Stream records read.
    pub read: usize,
    /// Records that passed the filter.
    pub delivered: usize,
    /// Invocations of the function.
    pub invocations: usize,
    /// Records dropped after the last retry.
    pub dropped: usize,
}

/// Reads one table's stream into send-invitations.
pub struct StreamPoller {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    iterators: Vec<Option<String>>,
    settings: MappingSettings,
    retry_pause: Duration,
}

impl StreamPoller {
    /// A poller over `table`'s stream from its oldest record, with the template's settings.
    pub async fn new(sdk: &SdkConfig, table: &str) -> anyhow::Result<StreamPoller> {
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let described = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .context("describing the table")?;
        let stream_arn = described
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| anyhow!("table {table} has no stream"))?;
        let client = aws_sdk_dynamodbstreams::Client::new(sdk);
        let stream = client
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
            .context("describing the stream")?;
        let mut iterators = Vec::new();
        for shard in stream
            .stream_description
            .map(|d| d.shards.unwrap_or_default())
            .unwrap_or_default()
        {
            let it = client
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(shard.shard_id.unwrap_or_default())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .context("opening the stream")?;
            iterators.push(it.shard_iterator);
        }
        Ok(StreamPoller {
            client,
            stream_arn,
            iterators,
            settings: MappingSettings::from_template("SendInvitationsFunction")?,
            retry_pause: Duration::from_millis(200),
        })
    }

    /// The mapping settings in use.
    pub fn settings(&self) -> &MappingSettings {
        &self.settings
    }

    /// Reads every record available now and delivers the ones that pass the filter.
    pub async fn poll(&mut self, sender: &Sender) -> anyhow::Result<PollReport> {
        let (read, passing) = self.read().await?;
        let mut report = self.deliver_records(sender, passing).await?;
        report.read = read;
        Ok(report)
    }

    /// Reads every record available now; returns how many were read and, as Lambda's JSON, the
    /// ones that pass the filter.
    pub async fn read(&mut self) -> anyhow::Result<(usize, Vec<Value>)> {
        let mut read = 0;
        let mut passing = Vec::new();
        for i in 0..self.iterators.len() {
            while let Some(iterator) = self.iterators[i].clone() {
                let out = self
                    .client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(1000)
                    .send()
                    .await
                    .context("reading the stream")?;
                self.iterators[i] = out.next_shard_iterator;
                let records = out.records.unwrap_or_default();
                if records.is_empty() {
                    break;
                }
                read += records.len();
                for r in &records {
                    let json = record_json(r, &self.stream_arn)?;
                    if self.settings.passes(&json)? {
                        passing.push(json);
                    }
                }
            }
        }
        Ok((read, passing))
    }

    /// Delivers records (Lambda's JSON) in batches of the mapping's size.
    pub async fn deliver_records(
        &self,
        sender: &Sender,
        records: Vec<Value>,
    ) -> anyhow::Result<PollReport> {
        let mut report = PollReport {
            delivered: records.len(),
            ..PollReport::default()
        };
        for batch in records.chunks(self.settings.batch_size.max(1)) {
            self.deliver(sender, batch.to_vec(), &mut report).await?;
        }
        Ok(report)
    }

    /// Invokes the function with `batch`, retrying as the event source mapping would.
    async fn deliver(
        &self,
        sender: &Sender,
        batch: Vec<Value>,
        report: &mut PollReport,
    ) -> anyhow::Result<()> {
        let mut queue = VecDeque::from([(batch, 0u32)]);
        while let Some((records, retries)) = queue.pop_front() {
            if records.is_empty() {
                continue;
            }
            report.invocations += 1;
            let event: Incoming = serde_json::from_value(json!({ "Records": records }))
                .context("the stream event does not parse as the function's input")?;
            let result = sender
                .function_handler(LambdaEvent::new(event, LambdaContext::default()))
                .await;
            let first_failed = match result {
                Ok(Outgoing::Stream(response)) => response
                    .batch_item_failures
                    .iter()
                    .filter_map(|f| f.item_identifier.as_deref())
                    .filter_map(|id| {
                        records
                            .iter()
                            .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(id))
                    })
                    .min(),
                Ok(Outgoing::Sweep(_)) => bail!("a stream batch was answered as a sweep"),
                Err(e) if self.settings.bisect && records.len() > 1 => {
                    tracing::warn!(error = %e, "invocation failed; bisecting the batch");
                    let mut left = records;
                    let right = left.split_off(left.len() / 2);
                    queue.push_front((right, retries + 1));
                    queue.push_front((left, retries + 1));
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "invocation failed");
                    Some(0)
                }
            };
            let Some(first) = first_failed else {
                continue;
            };
            if retries >= self.settings.max_retries {
                tracing::error!(
                    records = records.len() - first,
                    "batch dropped after {retries} retries (the on-failure destination on AWS)"
                );
                report.dropped += records.len() - first;
                continue;
            }
            tokio::time::sleep(self.retry_pause * (retries + 1)).await;
            queue.push_front((records[first..].to_vec(), retries + 1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_declares_the_mapping_the_local_stack_mimics() {
        let s = MappingSettings::from_template("SendInvitationsFunction").unwrap();
        assert_eq!(s.batch_size, 100);
        assert!(s.bisect);
        assert!(s.max_retries > 0);
        assert_eq!(s.filters.len(), 1);
    }

    fn record(event: &str, sk: &str, status: &str) -> Value {
        json!({
            "eventName": event,
            "dynamodb": {"NewImage": {"sk": {"S": sk}, "status": {"S": status}}}
        })
    }

    #[test]
    fn only_invitations_inserted_as_pending_pass_the_filter() {
        let s = MappingSettings::from_template("SendInvitationsFunction").unwrap();
        assert!(
            s.passes(&record("INSERT", "INVITE#01J", "PENDING"))
                .unwrap()
        );
        assert!(
            !s.passes(&record("MODIFY", "INVITE#01J", "PENDING"))
                .unwrap()
        );
        assert!(!s.passes(&record("INSERT", "INVITE#01J", "SENT")).unwrap());
        assert!(!s.passes(&record("INSERT", "USER", "PENDING")).unwrap());
        assert!(
            !s.passes(&json!({"eventName": "REMOVE", "dynamodb": {}}))
                .unwrap()
        );
    }

    #[test]
    fn the_pattern_language_handles_exists_and_anything_but() {
        let p = json!({"a": [{"exists": true}], "b": [{"anything-but": ["x"]}]});
        assert!(matches(&p, &json!({"a": 1, "b": "y"})).unwrap());
        assert!(!matches(&p, &json!({"a": 1, "b": "x"})).unwrap());
        assert!(!matches(&p, &json!({"b": "y"})).unwrap());
        assert!(matches(&json!({"a": [{"numeric": [">", 1]}]}), &json!({"a": 2})).is_err());
    }
}
