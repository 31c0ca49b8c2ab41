//! # send-invitations
//!
//! Turns each PENDING invitation (outbox item) into a mail with a set-password link. Fed by the
//! table's stream, filtered by the event source mapping to INVITE items inserted as PENDING; the
//! same function also answers a scheduled sweep that re-drives invitations the stream did not
//! deliver (stream records live 24 h) and expires links that ran out.
//!
//! Every step is conditional in the store, so a record delivered twice, or a sweep racing the
//! stream, sends one mail. Failures are reported per record (`batchItemFailures`): throttling and
//! transient SES errors are retried (the record is reported, Lambda retries from it; the
//! invitation goes back to PENDING with a later due time), permanent ones (SES rejected the
//! message, the sender is not verified…) leave the invitation FAILED with SES's reason, which
//! the API shows.
//!
//! The one gap a sender can't close alone: if the function dies after SES accepted a mail and
//! before the invitation is marked SENT, the lease runs out and the sweep mails it again, with a
//! new link; both links work until one is used.
//!
//! Over 600 lines: the stream path, the sweep and the SES failure handling share the
//! delivery of one invitation, which is easier to follow in one file.

pub mod config;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use lambda_runtime::LambdaEvent;
use rollcall::domain::{
    Invitation, InvitationId, InvitationStatus, InvitationToken, MailKind, OneTimeCode, Status,
    Tenant, TenantId, UserId,
};
use rollcall::mail::{AccountMail, MailAction};
use rollcall::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tracing::instrument;

pub use config::SenderConfig;

/// How long a sender holds an invitation while mailing it before another may take it over.
pub const LEASE_SECONDS: i64 = 120;
/// Attempts after which a transient failure becomes permanent.
pub const MAX_ATTEMPTS: u32 = 8;
/// Invitations one sweep looks at in each due-index shard.
pub const SWEEP_LIMIT_PER_SHARD: usize = 200;

/// The sender: the store, SES and the mail settings. Built once per process.
#[derive(Debug, Clone)]
pub struct Sender {
    store: Store,
    ses: aws_sdk_sesv2::Client,
    settings: Arc<SenderConfig>,
}

/// What became of one invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The mail went out.
    Sent,
    /// Someone else handled it, or it had been handled already.
    Skipped,
    /// It can no longer be sent (user deleted or suspended) and was revoked.
    Revoked,
    /// SES refused it for good; the invitation is FAILED with the reason.
    Failed,
    /// Its link ran out unused.
    Expired,
}

/// Why an invitation could not be handled now; [`DeliveryError::is_retryable`] says whether
/// trying later may help. Each keeps the error it came from.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SES failed in a way worth retrying (throttling, its own failures, timeouts).
    #[error("SES {code} (will retry)")]
    SesTransient {
        /// SES's error code.
        code: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The mail could not be put together (SES's request builder refused it).
    #[error("the mail could not be built")]
    Build(#[source] aws_sdk_sesv2::error::BuildError),
    /// The system's random source failed: no link could be minted.
    #[error("no link could be minted")]
    Token(#[source] rollcall::domain::TokenError),
    /// Not attempted: an earlier record of the batch met a transient failure.
    #[error("not attempted: an earlier record is backing off")]
    NotAttempted,
}

impl DeliveryError {
    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Store(e) => e.is_retryable(),
            DeliveryError::SesTransient { .. }
            | DeliveryError::Token(_)
            | DeliveryError::NotAttempted => true,
            DeliveryError::Build(_) => false,
        }
    }

    /// A stable code for the invitation this error ends.
    fn code(&self) -> &'static str {
        match self {
            DeliveryError::Store(StoreError::Corrupt(_)) => "data_corrupt",
            DeliveryError::Store(_) => "store_refused",
            DeliveryError::SesTransient { .. } => "ses_transient",
            DeliveryError::Build(_) => "mail_unbuildable",
            DeliveryError::Token(_) => "no_randomness",
            DeliveryError::NotAttempted => "not_attempted",
        }
    }
}

/// How SES's answer is to be treated.
#[derive(Debug)]
enum SesFailure {
    /// Throttling, quotas, 5xx, timeouts: try again later.
    Transient {
        code: String,
        message: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// SES will never accept this message as it is.
    Permanent { code: String, message: String },
}

/// Sorts SES's answer by the shared rule ([`rollcall::retry::is_transient`]); a paused
/// account (`SendingPausedException`) is transient too: sending resumes once it is lifted.
fn classify<E>(e: SdkError<E, HttpResponse>) -> SesFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().unwrap_or("Unknown").to_owned();
    let message = e
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string());
    if rollcall::retry::is_transient(&e) || code == "SendingPausedException" {
        SesFailure::Transient {
            code,
            message,
            source: Box::new(e),
        }
    } else {
        SesFailure::Permanent { code, message }
    }
}

/// When to try again after `attempts` transient failures: 30 s doubling, at most 30 min.
fn retry_delay(attempts: u32) -> Duration {
    let secs = 30i64.saturating_mul(1 << attempts.min(6));
    Duration::seconds(secs.min(30 * 60))
}

/// Tenants and inviter names read once per batch.
#[derive(Default)]
struct BatchCache {
    tenants: Mutex<HashMap<TenantId, Tenant>>,
    names: Mutex<HashMap<(TenantId, UserId), Option<String>>>,
}

impl BatchCache {
    fn tenant_cached(&self, id: &TenantId) -> Option<Tenant> {
        self.tenants.lock().ok()?.get(id).cloned()
    }

    fn keep_tenant(&self, t: &Tenant) {
        if let Ok(mut m) = self.tenants.lock() {
            m.insert(t.id.clone(), t.clone());
        }
    }

    fn name_cached(&self, key: &(TenantId, UserId)) -> Option<Option<String>> {
        self.names.lock().ok()?.get(key).cloned()
    }

    fn keep_name(&self, key: (TenantId, UserId), name: Option<String>) {
        if let Ok(mut m) = self.names.lock() {
            m.insert(key, name);
        }
    }
}

/// The event the function is invoked with: a stream batch, or the scheduled sweep.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Incoming {
    /// DynamoDB Streams records (already filtered by the event source mapping).
    Stream(DynamoDbEvent),
    /// The schedule's payload: `{"sweep": {}}`.
    Sweep {
        /// The sweep's options.
        sweep: SweepRequest,
    },
}

/// Options of a sweep.
#[derive(Debug, Default, Deserialize)]
pub struct SweepRequest {
    /// Invitations looked at per due-index shard (default [`SWEEP_LIMIT_PER_SHARD`]).
    #[serde(default)]
    pub limit_per_shard: Option<usize>,
}

/// What the function returns.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Outgoing {
    /// For a stream batch: the records to retry.
    Stream(DynamoDbEventResponse),
    /// For a sweep: what it did.
    Sweep(SweepReport),
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Pending invitations mailed.
    pub sent: usize,
    /// Links marked expired.
    pub expired: usize,
    /// Invitations revoked because their user is gone or suspended.
    pub revoked: usize,
    /// Invitations SES refused for good.
    pub failed: usize,
    /// Invitations someone else handled meanwhile.
    pub skipped: usize,
    /// Invitations left for the next sweep after a transient failure.
    pub retry_later: usize,
}

/// The keys of an invitation, read from a stream record's new image.
#[derive(Debug, Deserialize)]
struct InviteKeys {
    sk: String,
    status: String,
    tenant_id: TenantId,
    user_id: UserId,
    invitation_id: InvitationId,
}

impl Sender {
    /// A sender over `store`, mailing through `ses`.
    pub fn new(store: Store, ses: aws_sdk_sesv2::Client, settings: SenderConfig) -> Sender {
        Sender {
            store,
            ses,
            settings: Arc::new(settings),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The Lambda entry point: the same function `main` runs and `rollcall dev` drives.
    pub async fn function_handler(
        &self,
        event: LambdaEvent<Incoming>,
    ) -> Result<Outgoing, lambda_runtime::Error> {
        match event.payload {
            Incoming::Stream(batch) => Ok(Outgoing::Stream(self.handle_stream(batch).await)),
            Incoming::Sweep { sweep } => Ok(Outgoing::Sweep(self.sweep(&sweep).await?)),
        }
    }

    /// Handles a stream batch and returns the records Lambda should retry. After the first
    /// transient failure the rest of the batch is not attempted (SES is pushing back); those
    /// records are reported too and come back with the retry.
    #[instrument(skip_all, fields(records = batch.records.len()))]
    pub async fn handle_stream(&self, batch: DynamoDbEvent) -> DynamoDbEventResponse {
        let cache = BatchCache::default();
        let backing_off = AtomicBool::new(false);
        let (cache, backing_off) = (&cache, &backing_off);
        let results: Vec<(Option<String>, Result<Outcome, DeliveryError>)> =
            futures::stream::iter(batch.records)
                .map(move |record: EventRecord| async move {
                    let seq = record.change.sequence_number.clone();
                    if backing_off.load(Ordering::SeqCst) {
                        return (seq, Err(DeliveryError::NotAttempted));
                    }
                    let result = self.handle_record(&record, cache).await;
                    if result.as_ref().is_err_and(DeliveryError::is_retryable) {
                        backing_off.store(true, Ordering::SeqCst);
                    }
                    (seq, result)
                })
                .buffered(self.settings.concurrency.max(1))
                .collect()
                .await;
        let mut response = DynamoDbEventResponse::default();
        for (seq, result) in results {
            if let Err(e) = result {
                if e.is_retryable() {
                    tracing::warn!(error = %e, sequence_number = ?seq, "will retry");
                } else {
                    // The invitation stays pending: the sweep tries it again and, failing the
                    // same way, marks it failed.
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), sequence_number = ?seq, "dropping record");
                    continue;
                }
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = seq;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn handle_record(
        &self,
        record: &EventRecord,
        cache: &BatchCache,
    ) -> Result<Outcome, DeliveryError> {
        let keys: InviteKeys = match serde_dynamo::from_item(record.change.new_image.clone()) {
            Ok(k) => k,
            Err(e) => {
                // Not an invitation: the event source mapping's filter should have dropped it.
                tracing::warn!(error = %e, event = %record.event_name, "ignoring a record that is not an invitation");
                return Ok(Outcome::Skipped);
            }
        };
        if record.event_name != "INSERT"
            || !keys.sk.starts_with("INVITE#")
            || keys.status != InvitationStatus::Pending.as_str()
        {
            return Ok(Outcome::Skipped);
        }
        self.deliver(&keys.tenant_id, &keys.user_id, &keys.invitation_id, cache)
            .await
    }

    /// Mails one invitation if it still needs mailing.
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %user, invitation_id = %id))]
    async fn deliver(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &InvitationId,
        cache: &BatchCache,
    ) -> Result<Outcome, DeliveryError> {
        let found = self.store.user_invitations(tenant, user).await?;
        let Some(invitation) = found.find(id).cloned() else {
            return Ok(Outcome::Skipped);
        };
        if invitation.superseded_by.is_some()
            || !matches!(
                invitation.status,
                InvitationStatus::Pending | InvitationStatus::Sending
            )
        {
            return Ok(Outcome::Skipped);
        }
        let recipient = match found.user {
            Some(u) if u.status != Status::Suspended => u,
            gone_or_suspended => {
                let reason = match gone_or_suspended {
                    None => "user_deleted",
                    Some(_) => "user_suspended",
                };
                return match self
                    .store
                    .close_invitation(&invitation, InvitationStatus::Revoked, reason)
                    .await
                {
                    Ok(()) => Ok(Outcome::Revoked),
                    Err(StoreError::InvitationChanged) => Ok(Outcome::Skipped),
                    Err(e) => Err(e.into()),
                };
            }
        };
        let tenant = self.tenant(tenant, cache).await?;
        let inviter = match invitation.invited_by {
            Some(by) => self.user_name(&tenant.id, &by, cache).await?,
            None => None,
        };

        let now = self.store.clock().now();
        let kind = invitation.kind();
        let link_expires_at = now + self.settings.validity(kind);
        let lease_until = now + Duration::seconds(LEASE_SECONDS);
        // A link's token, or a code: minted here, only its digest stored.
        let (secret, digest) = match kind {
            MailKind::Code => {
                let code = OneTimeCode::mint().map_err(DeliveryError::Token)?;
                let digest = code.digest(&invitation.id);
                (code.expose().to_owned(), digest)
            }
            MailKind::Invitation | MailKind::Reset => {
                let token = InvitationToken::mint().map_err(DeliveryError::Token)?;
                let digest = token.digest();
                (token.expose().to_owned(), digest)
            }
        };
        if !self
            .store
            .begin_sending(&invitation, &digest, link_expires_at, lease_until)
            .await?
        {
            return Ok(Outcome::Skipped);
        }

        let link = self.settings.link(kind, &tenant.id, &secret);
        let action = match kind {
            MailKind::Code => MailAction::Code(&secret),
            MailKind::Invitation | MailKind::Reset => MailAction::Link {
                link: &link,
                inviter_name: inviter.as_deref(),
            },
        };
        let mail = AccountMail {
            kind,
            language: recipient.profile.language.unwrap_or(tenant.language),
            tenant_name: tenant.name.as_str(),
            user_name: recipient.profile.name.as_str(),
            login_id: recipient.profile.login_id.as_str(),
            action,
            expires_at: link_expires_at,
            time_zone: recipient
                .profile
                .time_zone
                .unwrap_or(tenant.billing_time_zone),
        }
        .render();
        let sent = self
            .ses
            .send_email()
            .from_email_address(&self.settings.sender_address)
            .destination(
                Destination::builder()
                    .to_addresses(invitation.email.as_str())
                    .build(),
            )
            .content(
                EmailContent::builder()
                    .simple(
                        Message::builder()
                            .subject(utf8(mail.subject)?)
                            .body(
                                Body::builder()
                                    .html(utf8(mail.html)?)
                                    .text(utf8(mail.text)?)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .set_configuration_set_name(self.settings.configuration_set.clone())
            .send()
            .await;

        match sent {
            Ok(out) => {
                let message_id = out.message_id().unwrap_or_default();
                match self
                    .store
                    .mark_sent(&invitation, &digest, link_expires_at, message_id)
                    .await
                {
                    Ok(()) | Err(StoreError::InvitationChanged) => {}
                    Err(e) => {
                        // The mail is out; the lease will run out and the sweep will find it
                        // SENDING. Better a late second mail than none: report, don't fail.
                        tracing::error!(error = %e, "mail sent but not recorded");
                    }
                }
                tracing::info!(message_id, kind = kind.as_str(), "account mail sent");
                Ok(Outcome::Sent)
            }
            Err(e) => {
                self.after_failure(&invitation, &digest, classify(e), now)
                    .await
            }
        }
    }

    async fn after_failure(
        &self,
        invitation: &Invitation,
        digest: &rollcall::domain::TokenDigest,
        failure: SesFailure,
        now: DateTime<Utc>,
    ) -> Result<Outcome, DeliveryError> {
        let attempts = invitation.attempts + 1;
        match failure {
            SesFailure::Transient {
                code,
                message,
                source,
            } if attempts < MAX_ATTEMPTS => {
                tracing::warn!(code, attempts, "SES failed transiently; will retry");
                let retry_at = now + retry_delay(attempts);
                match self
                    .store
                    .release_for_retry(invitation, digest, &code, &message, retry_at)
                    .await
                {
                    Ok(()) | Err(StoreError::InvitationChanged) => {}
                    Err(e) => return Err(e.into()),
                }
                Err(DeliveryError::SesTransient { code, source })
            }
            SesFailure::Transient { code, message, .. }
            | SesFailure::Permanent { code, message } => {
                tracing::error!(code, attempts, "invitation failed");
                match self
                    .store
                    .mark_failed(invitation, digest, &code, &message)
                    .await
                {
                    Ok(()) | Err(StoreError::InvitationChanged) => Ok(Outcome::Failed),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    async fn tenant(&self, id: &TenantId, cache: &BatchCache) -> Result<Tenant, DeliveryError> {
        if let Some(t) = cache.tenant_cached(id) {
            return Ok(t);
        }
        let t = self.store.get_tenant(id).await?;
        cache.keep_tenant(&t);
        Ok(t)
    }

    async fn user_name(
        &self,
        tenant: &TenantId,
        user: &UserId,
        cache: &BatchCache,
    ) -> Result<Option<String>, DeliveryError> {
        let key = (tenant.clone(), *user);
        if let Some(name) = cache.name_cached(&key) {
            return Ok(name);
        }
        let name = match self.store.get_user(tenant, user).await {
            Ok(u) => Some(u.profile.name.as_str().to_owned()),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        cache.keep_name(key, name.clone());
        Ok(name)
    }

    /// The scheduled sweep: mails invitations that are due (pending ones the stream did not
    /// deliver, ones whose sender died holding the lease, ones waiting out a retry delay) and
    /// expires sent links that ran out.
    #[instrument(skip_all)]
    pub async fn sweep(&self, request: &SweepRequest) -> Result<SweepReport, StoreError> {
        let limit = request.limit_per_shard.unwrap_or(SWEEP_LIMIT_PER_SHARD);
        let cache = BatchCache::default();
        let mut report = SweepReport::default();
        for shard in 0..rollcall::store::schema::OUTBOX_SHARDS {
            let now = self.store.clock().now();
            let due = self.store.due_invitations(shard, now, limit).await?;
            for invitation in due {
                let result = match invitation.status {
                    InvitationStatus::Sent => match self
                        .store
                        .close_invitation(&invitation, InvitationStatus::Expired, "expired")
                        .await
                    {
                        Ok(()) => Ok(Outcome::Expired),
                        Err(StoreError::InvitationChanged) => Ok(Outcome::Skipped),
                        Err(e) => Err(DeliveryError::from(e)),
                    },
                    _ => {
                        self.deliver(&invitation.tenant, &invitation.user, &invitation.id, &cache)
                            .await
                    }
                };
                match result {
                    Ok(Outcome::Sent) => report.sent += 1,
                    Ok(Outcome::Expired) => report.expired += 1,
                    Ok(Outcome::Revoked) => report.revoked += 1,
                    Ok(Outcome::Failed) => report.failed += 1,
                    Ok(Outcome::Skipped) => report.skipped += 1,
                    Err(e) if e.is_retryable() => report.retry_later += 1,
                    Err(e) => {
                        // It would fail the same way at every sweep: it ends FAILED with the
                        // reason, and the InvitationsFailed metric (with its alarm) counts it.
                        let cause = std::error::Error::source(&e).map(ToString::to_string);
                        tracing::error!(error = %e, cause, code = e.code(), invitation_id = %invitation.id, "invitation failed");
                        match self
                            .store
                            .fail_invitation(&invitation, e.code(), &e.to_string())
                            .await
                        {
                            Ok(()) => report.failed += 1,
                            Err(StoreError::InvitationChanged) => report.skipped += 1,
                            Err(e) if e.is_retryable() => report.retry_later += 1,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
        tracing::info!(?report, "sweep done");
        Ok(report)
    }
}

fn utf8(data: String) -> Result<Content, DeliveryError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(DeliveryError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stop_at_half_an_hour() {
        assert_eq!(retry_delay(1), Duration::seconds(60));
        assert_eq!(retry_delay(2), Duration::seconds(120));
        assert_eq!(retry_delay(20), Duration::minutes(30));
    }

    #[test]
    fn the_schedule_payload_and_a_stream_batch_are_told_apart() {
        let sweep: Incoming = serde_json::from_str(r#"{"sweep": {}}"#).unwrap();
        assert!(matches!(sweep, Incoming::Sweep { .. }));
        let stream: Incoming = serde_json::from_str(r#"{"Records": []}"#).unwrap();
        assert!(matches!(stream, Incoming::Stream(_)));
        assert!(serde_json::from_str::<Incoming>(r#"{"other": 1}"#).is_err());
    }
}
