//! Invitations in the table: the outbox items under each user's partition, the token items that
//! links resolve through, and every status change the sender, the sweep and the API make.
//!
//! Each change is conditional on the status it moves from (and, for the sender, on the digest of
//! the token it minted), so a redelivered stream record, a second sweep or a racing API call
//! changes nothing twice. Open invitations carry the sparse `by_due` index key with the time
//! something must next happen to them (re-drive a pending one, take back a dead sender's lease,
//! expire a sent one); closing or superseding an invitation removes it from that index.
//!
//! Over 600 lines: every status change of an invitation is a conditional write, and reading
//! them side by side is how their conditions are checked against each other.

use aws_sdk_dynamodb::types::{AttributeValue, Put, Update};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::tx::{Guard, Transaction};
use super::{Store, StoreError, items, keys, schema};
use crate::domain::{
    Email, Invitation, InvitationId, InvitationStatus, InvitationTrigger, MailKind, TenantId,
    TokenDigest, User, UserId,
};

/// How long an invitation item is kept after it is created (then TTL removes it).
pub const INVITATION_RETENTION_DAYS: i64 = 90;
/// How long a token item outlives its link, so an old link still says "expired", not "unknown".
pub const TOKEN_RETENTION_DAYS: i64 = 30;

#[derive(Debug, Serialize, Deserialize)]
struct InvitationItem {
    pk: String,
    sk: String,
    entity: String,
    tenant_id: TenantId,
    user_id: UserId,
    invitation_id: InvitationId,
    email: Email,
    status: InvitationStatus,
    trigger: InvitationTrigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invited_by: Option<UserId>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    superseded_by: Option<InvitationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accepted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    wrong_codes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hash: Option<TokenDigest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi4pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi4sk: Option<String>,
    expires_at: i64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How a time is written in the due index: fixed width, so text order is time order.
pub(crate) fn due_key(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// How long after its creation a pending invitation is re-driven by the sweep if the stream did
/// not deliver it.
pub const REDRIVE_AFTER_MINUTES: i64 = 5;

pub(crate) fn invitation_to_item(i: &Invitation) -> Result<items::Item, StoreError> {
    let item = InvitationItem {
        pk: keys::user_pk(&i.tenant, &i.user),
        sk: keys::invitation_sk(&i.id),
        entity: "invitation".into(),
        tenant_id: i.tenant.clone(),
        user_id: i.user,
        invitation_id: i.id,
        email: i.email.clone(),
        status: i.status,
        trigger: i.trigger,
        invited_by: i.invited_by,
        created_at: i.created_at,
        attempts: i.attempts,
        sent_at: i.sent_at,
        link_expires_at: i.link_expires_at,
        failure_code: i.failure.as_ref().map(|f| f.0.clone()),
        failure_message: i.failure.as_ref().map(|f| f.1.clone()),
        superseded_by: i.superseded_by,
        accepted_at: i.accepted_at,
        wrong_codes: i.wrong_codes,
        token_hash: i.digest.clone(),
        gsi4pk: i.status.is_open().then(|| keys::outbox_pk(&i.id)),
        gsi4sk: i
            .status
            .is_open()
            .then(|| due_key(i.created_at + Duration::minutes(REDRIVE_AFTER_MINUTES))),
        expires_at: (i.created_at + Duration::days(INVITATION_RETENTION_DAYS)).timestamp(),
    };
    serde_dynamo::to_item(item).map_err(|e| StoreError::Corrupt(format!("invitation item: {e}")))
}

pub(crate) fn invitation_from_item(item: items::Item) -> Result<Invitation, StoreError> {
    let i: InvitationItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Corrupt(format!("invitation item: {e}")))?;
    Ok(Invitation {
        id: i.invitation_id,
        tenant: i.tenant_id,
        user: i.user_id,
        email: i.email,
        status: i.status,
        trigger: i.trigger,
        invited_by: i.invited_by,
        created_at: i.created_at,
        attempts: i.attempts,
        sent_at: i.sent_at,
        link_expires_at: i.link_expires_at,
        failure: i.failure_code.zip(i.failure_message),
        superseded_by: i.superseded_by,
        accepted_at: i.accepted_at,
        wrong_codes: i.wrong_codes,
        digest: i.token_hash,
    })
}

/// A link as stored: where it leads, and whether it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The invited user.
    pub user: UserId,
    /// The invitation the link was minted for.
    pub invitation: InvitationId,
    /// When the link stops working.
    pub link_expires_at: DateTime<Utc>,
    /// Whether it set a password already.
    pub used: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenItem {
    pk: String,
    sk: String,
    entity: String,
    tenant_id: TenantId,
    user_id: UserId,
    invitation_id: InvitationId,
    link_expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used_at: Option<DateTime<Utc>>,
    expires_at: i64,
}

/// A user (if still there: `None` once deleted) and every invitation kept for them, oldest
/// first: one strongly consistent query of the user's partition.
#[derive(Debug, Clone)]
pub struct UserInvitations {
    /// The live user.
    pub user: Option<User>,
    /// Their invitations, oldest first.
    pub invitations: Vec<Invitation>,
    /// Their sign-in record (same partition, same query).
    pub sign_in: super::SignInState,
}

impl UserInvitations {
    /// The newest invitation (of kind [`MailKind::Invitation`]: resets and codes are not
    /// invitations to the people who read the user's record).
    pub fn latest(&self) -> Option<&Invitation> {
        self.latest_of(MailKind::Invitation)
    }

    /// The newest item of `kind`.
    pub fn latest_of(&self, kind: MailKind) -> Option<&Invitation> {
        self.invitations.iter().rev().find(|i| i.kind() == kind)
    }

    /// Items of `kind` created after `since`.
    pub fn count_since(&self, kind: MailKind, since: DateTime<Utc>) -> usize {
        self.invitations
            .iter()
            .filter(|i| i.kind() == kind && i.created_at > since)
            .count()
    }

    /// The invitation with this id.
    pub fn find(&self, id: &InvitationId) -> Option<&Invitation> {
        self.invitations.iter().find(|i| i.id == *id)
    }

    /// Invitations no newer one has superseded yet (normally at most one).
    pub fn unsuperseded(&self) -> Vec<&Invitation> {
        self.unsuperseded_of(MailKind::Invitation)
    }

    /// Items of `kind` no newer one has superseded yet: a new reset link supersedes the older
    /// links, a new code the older codes, and neither touches an invitation.
    pub fn unsuperseded_of(&self, kind: MailKind) -> Vec<&Invitation> {
        self.invitations
            .iter()
            .filter(|i| i.kind() == kind && i.superseded_by.is_none())
            .collect()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn invitation_key(i: &Invitation) -> items::Item {
    items::key(
        keys::user_pk(&i.tenant, &i.user),
        &keys::invitation_sk(&i.id),
    )
}

impl Store {
    /// Reads a user and their invitations in one query.
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
    pub async fn user_invitations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UserInvitations, StoreError> {
        let mut found = UserInvitations {
            user: None,
            invitations: Vec::new(),
            sign_in: super::SignInState::default(),
        };
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::user_pk(tenant, user)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::aws)?;
            for item in out.items.unwrap_or_default() {
                match items::string_attr(&item, schema::SK) {
                    Some(keys::USER_SK) => found.user = items::user_from_item(item)?,
                    Some(sk) if sk.starts_with("INVITE#") => {
                        found.invitations.push(invitation_from_item(item)?)
                    }
                    _ => found.sign_in.absorb(&item)?,
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        found.invitations.sort_by_key(|i| i.id);
        Ok(found)
    }

    /// Takes a pending invitation (or one whose sender's lease ran out) for sending: stores the
    /// digest of the freshly minted token (a token item, and on the invitation) and leases the
    /// invitation to this sender until `lease_until`. `Ok(false)` when another sender has it,
    /// it was sent already or a newer invitation superseded it.
    #[instrument(skip_all, fields(tenant_id = %i.tenant, invitation_id = %i.id))]
    pub async fn begin_sending(
        &self,
        i: &Invitation,
        digest: &TokenDigest,
        link_expires_at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let token = TokenItem {
            pk: keys::token_pk(digest.as_str()),
            sk: keys::TOKEN_SK.into(),
            entity: "token".into(),
            tenant_id: i.tenant.clone(),
            user_id: i.user,
            invitation_id: i.id,
            link_expires_at,
            used_at: None,
            expires_at: (link_expires_at + Duration::days(TOKEN_RETENTION_DAYS)).timestamp(),
        };
        let token = serde_dynamo::to_item(token)
            .map_err(|e| StoreError::Corrupt(format!("token item: {e}")))?;
        let mut tx = Transaction::new(&self.table);
        // A code is found through the sign-in that asked for it, never by its digest: six
        // digits would collide across users in a table keyed by digest.
        if i.kind() != MailKind::Code {
            tx.put(
                Put::builder()
                    .set_item(Some(token))
                    .condition_expression("attribute_not_exists(pk)"),
                Guard::Invitation,
            )?;
        }
        tx.update(
            Update::builder()
                .set_key(Some(invitation_key(i)))
                .update_expression(
                    "SET #s = :sending, lease_until = :lease, token_hash = :h, \
                     link_expires_at = :exp, attempts = if_not_exists(attempts, :zero) + :one, \
                     gsi4sk = :lease_due",
                )
                .condition_expression(
                    "attribute_not_exists(superseded_by) AND \
                     (#s = :pending OR (#s = :sending AND lease_until <= :now))",
                )
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":sending", s(InvitationStatus::Sending.as_str()))
                .expression_attribute_values(":pending", s(InvitationStatus::Pending.as_str()))
                .expression_attribute_values(":lease", n(lease_until.timestamp_millis()))
                .expression_attribute_values(":lease_due", s(due_key(lease_until)))
                .expression_attribute_values(":now", n(now.timestamp_millis()))
                .expression_attribute_values(":h", s(digest.as_str()))
                .expression_attribute_values(":exp", s(due_key(link_expires_at)))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1)),
            Guard::InvitationState,
        )?;
        match tx.commit(&self.client).await {
            Ok(()) => Ok(true),
            Err(StoreError::InvitationChanged) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records that the mail went out. The invitation is due again when its link expires.
    pub async fn mark_sent(
        &self,
        i: &Invitation,
        digest: &TokenDigest,
        link_expires_at: DateTime<Utc>,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.finish_sending(
            i,
            digest,
            "SET #s = :to, sent_at = :now, message_id = :mid, gsi4sk = :due \
             REMOVE lease_until, failure_code, failure_message",
            InvitationStatus::Sent,
            vec![
                (":now", s(due_key(now))),
                (":mid", s(message_id)),
                (":due", s(due_key(link_expires_at))),
            ],
        )
        .await
    }

    /// Gives a leased invitation back after a transient failure; it is due again at `retry_at`.
    pub async fn release_for_retry(
        &self,
        i: &Invitation,
        digest: &TokenDigest,
        code: &str,
        message: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.finish_sending(
            i,
            digest,
            "SET #s = :to, failure_code = :code, failure_message = :msg, gsi4sk = :due \
             REMOVE lease_until",
            InvitationStatus::Pending,
            vec![
                (":code", s(code)),
                (":msg", s(message)),
                (":due", s(due_key(retry_at))),
            ],
        )
        .await
    }

    /// Marks a leased invitation failed for good, with SES's reason; it leaves the due index.
    pub async fn mark_failed(
        &self,
        i: &Invitation,
        digest: &TokenDigest,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        self.finish_sending(
            i,
            digest,
            "SET #s = :to, failure_code = :code, failure_message = :msg \
             REMOVE lease_until, gsi4pk, gsi4sk",
            InvitationStatus::Failed,
            vec![(":code", s(code)), (":msg", s(message))],
        )
        .await
    }

    async fn finish_sending(
        &self,
        i: &Invitation,
        digest: &TokenDigest,
        expression: &str,
        to: InvitationStatus,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(invitation_key(i)))
            .update_expression(expression)
            .condition_expression("#s = :sending AND token_hash = :h")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":sending", s(InvitationStatus::Sending.as_str()))
            .expression_attribute_values(":h", s(digest.as_str()));
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        conditional(update.send().await)
    }

    /// Closes an open invitation that can no longer be sent or used (`REVOKED`, with why) or
    /// whose link ran out (`EXPIRED`), if it is still in the status it was read in. It leaves
    /// the due index either way.
    pub async fn close_invitation(
        &self,
        i: &Invitation,
        to: InvitationStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.end_invitation(i, &[i.status], to, reason, None).await
    }

    /// Ends an invitation that can never be sent (its data can't be read or its mail can't be
    /// built): FAILED with `code` and `message`, out of the due index, whether it was still
    /// pending or a sender had taken it.
    pub async fn fail_invitation(
        &self,
        i: &Invitation,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let from = [InvitationStatus::Pending, InvitationStatus::Sending];
        self.end_invitation(i, &from, InvitationStatus::Failed, code, Some(message))
            .await
    }

    /// Moves an invitation from one of `from` to `to`, with the reason (and a message), out of
    /// the due index and free of any sender's lease.
    async fn end_invitation(
        &self,
        i: &Invitation,
        from: &[InvitationStatus],
        to: InvitationStatus,
        code: &str,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        let names: Vec<String> = (0..from.len()).map(|n| format!(":from{n}")).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(invitation_key(i)))
            .update_expression(match message {
                Some(_) => {
                    "SET #s = :to, failure_code = :why, failure_message = :msg \
                            REMOVE lease_until, gsi4pk, gsi4sk"
                }
                None => "SET #s = :to, failure_code = :why REMOVE gsi4pk, gsi4sk",
            })
            .condition_expression(format!("#s IN ({})", names.join(", ")))
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":why", s(code));
        for (name, status) in names.iter().zip(from) {
            update = update.expression_attribute_values(name, s(status.as_str()));
        }
        if let Some(message) = message {
            update = update.expression_attribute_values(":msg", s(message));
        }
        conditional(update.send().await)
    }

    /// Open invitations of one due-index shard whose time has come, oldest first.
    pub async fn due_invitations(
        &self,
        shard: u32,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(schema::BY_DUE.name)
                .key_condition_expression("gsi4pk = :pk AND gsi4sk <= :now")
                .expression_attribute_values(":pk", s(keys::outbox_shard_pk(shard)))
                .expression_attribute_values(":now", s(due_key(now)))
                .limit(i32::try_from(limit.saturating_sub(found.len())).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::aws)?;
            for item in out.items.unwrap_or_default() {
                found.push(invitation_from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() || found.len() >= limit {
                return Ok(found);
            }
        }
    }

    /// Looks a link up by the digest of its token.
    pub async fn token(&self, digest: &TokenDigest) -> Result<Option<TokenRecord>, StoreError> {
        let item = self
            .read_item(keys::token_pk(digest.as_str()), keys::TOKEN_SK)
            .await?;
        let Some(item) = item else {
            return Ok(None);
        };
        let t: TokenItem = serde_dynamo::from_item(item)
            .map_err(|e| StoreError::Corrupt(format!("token item: {e}")))?;
        Ok(Some(TokenRecord {
            tenant: t.tenant_id,
            user: t.user_id,
            invitation: t.invitation_id,
            link_expires_at: t.link_expires_at,
            used: t.used_at.is_some(),
        }))
    }

    /// Sets the password through a link: the user becomes `after` (active, with the hash), the
    /// invitation becomes `ACCEPTED` and the token is burnt, in one transaction. Fails with
    /// [`StoreError::TokenUsed`] if the link was used meanwhile, and
    /// [`StoreError::InvitationChanged`] if the invitation was superseded or closed.
    pub async fn accept_invitation(
        &self,
        before: &User,
        after: User,
        invitation: &Invitation,
        digest: &TokenDigest,
    ) -> Result<User, StoreError> {
        self.accept_link(before, after, invitation, digest, false)
            .await
    }

    /// Sets the password through a link; with `revoke_sessions`, every session from before now
    /// is void too.
    #[instrument(skip_all, fields(tenant_id = %before.tenant, user_id = %before.id))]
    pub(crate) async fn accept_link(
        &self,
        before: &User,
        after: User,
        invitation: &Invitation,
        digest: &TokenDigest,
        revoke_sessions: bool,
    ) -> Result<User, StoreError> {
        let now = self.clock.now();
        let (mut tx, after) = self.user_update_tx(before, after, now)?;
        if revoke_sessions {
            super::account::revoke_in(&mut tx, before, now)?;
        }
        tx.update(
            Update::builder()
                .set_key(Some(invitation_key(invitation)))
                .update_expression("SET #s = :accepted, accepted_at = :now REMOVE gsi4pk, gsi4sk")
                .condition_expression(
                    "attribute_not_exists(superseded_by) AND #s IN (:p, :sg, :st)",
                )
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":accepted", s(InvitationStatus::Accepted.as_str()))
                .expression_attribute_values(":now", s(due_key(now)))
                .expression_attribute_values(":p", s(InvitationStatus::Pending.as_str()))
                .expression_attribute_values(":sg", s(InvitationStatus::Sending.as_str()))
                .expression_attribute_values(":st", s(InvitationStatus::Sent.as_str())),
            Guard::InvitationState,
        )?;
        tx.update(
            Update::builder()
                .set_key(Some(items::key(
                    keys::token_pk(digest.as_str()),
                    keys::TOKEN_SK,
                )))
                .update_expression("SET used_at = :now")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(used_at)")
                .expression_attribute_values(":now", s(due_key(now))),
            Guard::TokenUnused,
        )?;
        self.commit(tx).await?;
        Ok(after)
    }

    /// Writes a new invitation for `user` (resend, or a changed email address) and supersedes
    /// every earlier invitation not superseded yet, revoking their links, if the user is still
    /// at the version read.
    #[instrument(skip_all, fields(tenant_id = %user.tenant, user_id = %user.id))]
    pub async fn reinvite(
        &self,
        user: &User,
        supersede: &[&Invitation],
        invitation: &Invitation,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = Transaction::new(&self.table);
        tx.user_at_version(user)?;
        self.add_invitation(&mut tx, supersede, invitation)?;
        tx.import_lock_free(&user.tenant, now)?;
        self.commit(tx).await
    }

    /// Like [`Store::update_user`], and also invites the user again (their email changed).
    pub async fn update_user_and_reinvite(
        &self,
        before: &User,
        after: User,
        supersede: &[&Invitation],
        invitation: &Invitation,
    ) -> Result<User, StoreError> {
        let now = self.clock.now();
        let (mut tx, after) = self.user_update_tx(before, after, now)?;
        self.add_invitation(&mut tx, supersede, invitation)?;
        self.commit(tx).await?;
        Ok(after)
    }

    pub(crate) fn add_invitation(
        &self,
        tx: &mut Transaction,
        supersede: &[&Invitation],
        invitation: &Invitation,
    ) -> Result<(), StoreError> {
        tx.put(
            Put::builder()
                .set_item(Some(invitation_to_item(invitation)?))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::Invitation,
        )?;
        for old in supersede {
            tx.update(
                Update::builder()
                    .set_key(Some(invitation_key(old)))
                    .update_expression("SET superseded_by = :new REMOVE gsi4pk, gsi4sk")
                    .condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(superseded_by)",
                    )
                    .expression_attribute_values(":new", s(invitation.id.to_string())),
                Guard::InvitationState,
            )?;
        }
        Ok(())
    }
}

/// Maps a conditional single-item write: a failed condition means the item moved on.
fn conditional<T, E>(
    result: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
) -> Result<(), StoreError>
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e)
                == Some("ConditionalCheckFailedException") =>
        {
            Err(StoreError::InvitationChanged)
        }
        Err(e) => Err(StoreError::aws(e)),
    }
}
