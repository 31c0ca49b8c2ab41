//! Building one `TransactWriteItems` and reading its failure back: each item carries a
//! [`Guard`] saying what a failed condition on it means, so a cancelled transaction becomes the
//! precise [`StoreError`] of the item that refused it.
//!
//! Over 600 lines with its tests: the guards, the counters and the transaction's commit are
//! one piece.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::builders::{PutBuilder, UpdateBuilder};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};

use super::{IDEMPOTENCY_TTL_HOURS, IdempotencyRecord, StoreError, items, keys};
use crate::domain::{Invitation, Status, TenantId, User, UserId};

/// What a failed condition on one item of a transaction means. Declared in order of priority:
/// when several items fail, the first in this order is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Guard {
    /// The import journal entry is new (its chunk was not written before).
    JournalEntry,
    /// The idempotency key was used before.
    Idempotency,
    /// The tenant item must exist.
    TenantExists,
    /// No live import lock.
    ImportLock,
    /// The user is at the version read.
    UserVersion,
    /// The email claim is free.
    EmailClaim,
    /// The login-id claim is free.
    LoginClaim,
    /// Removing an active admin leaves another.
    AdminCount,
    /// A seat is free (or the tenant has no seat limit); the tenant exists.
    SeatLimit,
    /// The claim being released belongs to this user.
    ClaimRelease,
    /// A fresh user id is unused.
    UserNew,
    /// The invitation is still in the status (and unsuperseded) as read.
    InvitationState,
    /// The link was not used yet.
    TokenUnused,
    /// A fresh invitation id (or token) is unused.
    Invitation,
    /// The import job is at the version read.
    ImportJournal,
    /// The signing keys are as read (a concurrent rotation lost).
    SigningKeys,
    /// A fresh random id (a client's, a token's) is unused.
    FreshId,
    /// The grant (refresh family) is not revoked.
    GrantLive,
}

impl Guard {
    fn error(self) -> StoreError {
        match self {
            Guard::JournalEntry => StoreError::AlreadyWritten,
            Guard::Idempotency => StoreError::IdempotencyKeyUsed,
            Guard::TenantExists => StoreError::TenantNotFound,
            Guard::ImportLock => StoreError::ImportInProgress,
            Guard::UserVersion | Guard::ClaimRelease => StoreError::VersionConflict,
            Guard::EmailClaim => StoreError::EmailTaken,
            Guard::LoginClaim => StoreError::LoginIdTaken,
            Guard::AdminCount => StoreError::LastAdmin,
            Guard::SeatLimit => StoreError::SeatLimitReached { limit: 0 },
            Guard::UserNew => StoreError::Corrupt("a new user id collided".into()),
            Guard::InvitationState => StoreError::InvitationChanged,
            Guard::TokenUnused => StoreError::TokenUsed,
            Guard::Invitation => StoreError::Corrupt("a new invitation id collided".into()),
            Guard::ImportJournal => StoreError::VersionConflict,
            Guard::SigningKeys => StoreError::KeysChanged,
            Guard::FreshId => StoreError::Corrupt("a fresh random id collided".into()),
            Guard::GrantLive => StoreError::GrantRevoked,
        }
    }
}

/// How writes move the counters on their tenant's item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantDelta {
    /// Active admins.
    pub admins: i64,
    /// Active users.
    pub active: i64,
    /// Active and invited users.
    pub active_or_invited: i64,
}

impl std::ops::AddAssign for TenantDelta {
    fn add_assign(&mut self, other: TenantDelta) {
        self.admins += other.admins;
        self.active += other.active;
        self.active_or_invited += other.active_or_invited;
    }
}

impl std::ops::Sub for TenantDelta {
    type Output = TenantDelta;

    fn sub(self, other: TenantDelta) -> TenantDelta {
        TenantDelta {
            admins: self.admins - other.admins,
            active: self.active - other.active,
            active_or_invited: self.active_or_invited - other.active_or_invited,
        }
    }
}

impl TenantDelta {
    /// How a planned import change moves the counters.
    pub fn of_change(change: &crate::import::Planned) -> TenantDelta {
        use crate::import::Planned;
        match change {
            Planned::Create { user, .. } => TenantDelta::between(None, Some(user)),
            Planned::Update { before, after, .. } => {
                TenantDelta::between(Some(before), Some(after))
            }
            Planned::Delete { user, .. } => TenantDelta::between(Some(user), None),
        }
    }

    /// The change from `before` to `after` (`None`: the user does not exist, or is deleted).
    pub fn between(before: Option<&User>, after: Option<&User>) -> TenantDelta {
        let counts = |u: Option<&User>| {
            u.map_or((0, 0, 0), |u| {
                (
                    i64::from(u.is_active_admin()),
                    i64::from(u.status == Status::Active),
                    i64::from(matches!(u.status, Status::Active | Status::Invited)),
                )
            })
        };
        let (a0, b0, c0) = counts(before);
        let (a1, b1, c1) = counts(after);
        TenantDelta {
            admins: a1 - a0,
            active: b1 - b0,
            active_or_invited: c1 - c0,
        }
    }
}

/// The `:value` and `#name` placeholders an item of a transaction declares but none of its
/// expressions uses (DynamoDB refuses such a request; moto does not check).
fn unused_placeholders(item: &TransactWriteItem) -> Vec<String> {
    let (expressions, values, names) = if let Some(p) = item.put() {
        (
            vec![p.condition_expression()],
            p.expression_attribute_values(),
            p.expression_attribute_names(),
        )
    } else if let Some(u) = item.update() {
        (
            vec![Some(u.update_expression()), u.condition_expression()],
            u.expression_attribute_values(),
            u.expression_attribute_names(),
        )
    } else if let Some(d) = item.delete() {
        (
            vec![d.condition_expression()],
            d.expression_attribute_values(),
            d.expression_attribute_names(),
        )
    } else if let Some(c) = item.condition_check() {
        (
            vec![Some(c.condition_expression())],
            c.expression_attribute_values(),
            c.expression_attribute_names(),
        )
    } else {
        return Vec::new();
    };
    let text: Vec<&str> = expressions.into_iter().flatten().collect();
    let used = |placeholder: &str| {
        text.iter().any(|e| {
            e.match_indices(placeholder).any(|(i, _)| {
                !e[i + placeholder.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
    };
    let declared = values
        .into_iter()
        .flat_map(|v| v.keys())
        .chain(names.into_iter().flat_map(|n| n.keys()));
    declared.filter(|p| !used(p)).cloned().collect()
}

/// Retries of a transaction cancelled only by conflicts with concurrent ones: 40, 80, 160 ms.
const CONFLICT_BACKOFF: crate::retry::Backoff =
    crate::retry::Backoff::new(Duration::from_millis(40), 3);

/// The items of one transaction and their guards.
pub(crate) struct Transaction {
    table: String,
    items: Vec<TransactWriteItem>,
    guards: Vec<Guard>,
    /// The tenant whose seat limit the transaction checks, if any.
    seat_tenant: Option<TenantId>,
}

/// SHA-256 of `s`, hex.
pub(crate) fn digest(s: &str) -> String {
    crate::digest::sha256_hex(s.as_bytes())
}

fn num(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl Transaction {
    pub(crate) fn new(table: &str) -> Self {
        Transaction {
            table: table.to_owned(),
            items: Vec::new(),
            guards: Vec::new(),
            seat_tenant: None,
        }
    }

    fn push(&mut self, item: TransactWriteItem, guard: Guard) {
        debug_assert_eq!(
            unused_placeholders(&item),
            Vec::<String>::new(),
            "DynamoDB refuses expression values and names that the expressions do not use"
        );
        self.items.push(item);
        self.guards.push(guard);
    }

    pub(crate) fn put(&mut self, put: PutBuilder, guard: Guard) -> Result<(), StoreError> {
        let put = put
            .table_name(&self.table)
            .build()
            .map_err(StoreError::build)?;
        self.push(TransactWriteItem::builder().put(put).build(), guard);
        Ok(())
    }

    /// Claims a unique value: the claim item must not exist yet.
    pub(crate) fn claim(&mut self, item: items::Item, guard: Guard) -> Result<(), StoreError> {
        self.put(
            Put::builder()
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)"),
            guard,
        )
    }

    /// Releases a claim held by `user`.
    pub(crate) fn release_claim(&mut self, pk: String, user: &UserId) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, keys::CLAIM_SK)))
            .condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user.to_string()))
            .build()
            .map_err(StoreError::build)?;
        self.push(
            TransactWriteItem::builder().delete(delete).build(),
            Guard::ClaimRelease,
        );
        Ok(())
    }

    /// Writes a new user (its id must be unused) and claims its email and login id.
    pub(crate) fn create_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.put(
            Put::builder()
                .set_item(Some(items::user_to_item(user)?))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::UserNew,
        )?;
        self.claim(
            items::claim_item(
                keys::email_claim_pk(&user.tenant, &user.profile.email.key()),
                &user.tenant,
                &user.id,
            ),
            Guard::EmailClaim,
        )?;
        self.claim(
            items::claim_item(
                keys::login_claim_pk(&user.tenant, &user.profile.login_id.key()),
                &user.tenant,
                &user.id,
            ),
            Guard::LoginClaim,
        )
    }

    /// Replaces `before` (at its version) with `after` as given, moving the email and login-id
    /// claims when they change.
    pub(crate) fn update_user(&mut self, before: &User, after: &User) -> Result<(), StoreError> {
        self.put(
            Put::builder()
                .set_item(Some(items::user_to_item(after)?))
                .condition_expression("attribute_exists(pk) AND version = :v")
                .expression_attribute_values(":v", num(before.version)),
            Guard::UserVersion,
        )?;
        if before.profile.email.key() != after.profile.email.key() {
            self.release_claim(
                keys::email_claim_pk(&before.tenant, &before.profile.email.key()),
                &before.id,
            )?;
            self.claim(
                items::claim_item(
                    keys::email_claim_pk(&after.tenant, &after.profile.email.key()),
                    &after.tenant,
                    &after.id,
                ),
                Guard::EmailClaim,
            )?;
        }
        if before.profile.login_id.key() != after.profile.login_id.key() {
            self.release_claim(
                keys::login_claim_pk(&before.tenant, &before.profile.login_id.key()),
                &before.id,
            )?;
            self.claim(
                items::claim_item(
                    keys::login_claim_pk(&after.tenant, &after.profile.login_id.key()),
                    &after.tenant,
                    &after.id,
                ),
                Guard::LoginClaim,
            )?;
        }
        Ok(())
    }

    /// Turns `user` (at its version) into a tombstone and releases its claims.
    pub(crate) fn delete_user(
        &mut self,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tombstone = user.clone();
        tombstone.version = user.version + 1;
        self.put(
            Put::builder()
                .set_item(Some(items::tombstone_to_item(&tombstone, now)?))
                .condition_expression("attribute_exists(pk) AND version = :v")
                .expression_attribute_values(":v", num(user.version)),
            Guard::UserVersion,
        )?;
        self.release_claim(
            keys::email_claim_pk(&user.tenant, &user.profile.email.key()),
            &user.id,
        )?;
        self.release_claim(
            keys::login_claim_pk(&user.tenant, &user.profile.login_id.key()),
            &user.id,
        )
    }

    /// Writes a new invitation (outbox item); the stream hands it to the sender.
    pub(crate) fn put_invitation(&mut self, invitation: &Invitation) -> Result<(), StoreError> {
        self.put(
            Put::builder()
                .set_item(Some(super::invitations::invitation_to_item(invitation)?))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::Invitation,
        )
    }

    /// Adds an update of one item.
    /// Adds a condition check (built by the caller).
    pub(crate) fn push_check(&mut self, item: TransactWriteItem, guard: Guard) {
        self.push(item, guard);
    }

    pub(crate) fn update(&mut self, update: UpdateBuilder, guard: Guard) -> Result<(), StoreError> {
        let update = update
            .table_name(&self.table)
            .build()
            .map_err(StoreError::build)?;
        self.push(TransactWriteItem::builder().update(update).build(), guard);
        Ok(())
    }

    /// Adds a delete of the item at `key`, conditioned on `condition`.
    pub(crate) fn delete(
        &mut self,
        key: items::Item,
        condition: &str,
        guard: Guard,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .build()
            .map_err(StoreError::build)?;
        self.push(TransactWriteItem::builder().delete(delete).build(), guard);
        Ok(())
    }

    /// Adds a condition check.
    pub(crate) fn condition_check(&mut self, check: ConditionCheck, guard: Guard) {
        self.push(
            TransactWriteItem::builder().condition_check(check).build(),
            guard,
        );
    }

    /// Requires the user to be live and at the version read.
    pub(crate) fn user_at_version(&mut self, user: &User) -> Result<(), StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::user_pk(&user.tenant, &user.id),
                keys::USER_SK,
            )))
            .condition_expression("version = :v AND #state <> :deleted")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":v", num(user.version))
            .expression_attribute_values(":deleted", AttributeValue::S("deleted".into()))
            .build()
            .map_err(StoreError::build)?;
        self.push(
            TransactWriteItem::builder().condition_check(check).build(),
            Guard::UserVersion,
        );
        Ok(())
    }

    /// Remembers the response to a request with an idempotency key; fails if the key was used.
    pub(crate) fn put_idempotency(
        &mut self,
        tenant: &TenantId,
        key: &str,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let expires = now + chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS);
        let item = items::Item::from([
            (
                "pk".into(),
                AttributeValue::S(keys::idempotency_pk(tenant, &digest(key))),
            ),
            ("sk".into(), AttributeValue::S(keys::IDEMPOTENCY_SK.into())),
            ("entity".into(), AttributeValue::S("idempotency".into())),
            (
                "request_hash".into(),
                AttributeValue::S(record.request_hash.clone()),
            ),
            ("status".into(), num(record.status)),
            ("body".into(), AttributeValue::S(record.body.clone())),
            ("expires_at".into(), num(expires.timestamp())),
        ]);
        self.put(
            Put::builder()
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
                .expression_attribute_values(":now", num(now.timestamp())),
            Guard::Idempotency,
        )
    }

    /// Fails the transaction while a bulk import holds the tenant's lock (and its lease is live).
    pub(crate) fn import_lock_free(
        &mut self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::tenant_pk(tenant),
                keys::IMPORT_LOCK_SK,
            )))
            .condition_expression("attribute_not_exists(pk) OR lease_expires_at < :now")
            .expression_attribute_values(":now", num(now.timestamp_millis()))
            .build()
            .map_err(StoreError::build)?;
        self.push(
            TransactWriteItem::builder().condition_check(check).build(),
            Guard::ImportLock,
        );
        Ok(())
    }

    /// Requires the tenant to exist and moves its counters by `delta`: the count of active
    /// admins (never below one) and the seat counters (never above the seat limit, under the
    /// tenant's billing policy, when a seat is taken).
    pub(crate) fn tenant_guard(
        &mut self,
        tenant: &TenantId,
        delta: TenantDelta,
    ) -> Result<(), StoreError> {
        let key = items::key(keys::tenant_pk(tenant), keys::TENANT_SK);
        if delta == TenantDelta::default() {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(StoreError::build)?;
            self.push(
                TransactWriteItem::builder().condition_check(check).build(),
                Guard::TenantExists,
            );
            return Ok(());
        }
        let mut sets = Vec::new();
        let mut conditions = vec!["attribute_exists(pk)".to_owned()];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .expression_attribute_values(":zero", num(0));
        for (attr, d) in [
            ("active_admins", delta.admins),
            ("users_active", delta.active),
            ("users_active_or_invited", delta.active_or_invited),
        ] {
            if d != 0 {
                sets.push(format!("{attr} = if_not_exists({attr}, :zero) + :d_{attr}"));
                update = update.expression_attribute_values(format!(":d_{attr}"), num(d));
            }
        }
        let mut guard = Guard::TenantExists;
        if delta.admins < 0 {
            conditions.push("active_admins > :one".into());
            update = update.expression_attribute_values(":one", num(1));
            guard = Guard::AdminCount;
        }
        // A seat is taken: an active user counts under every policy, an invited one only when
        // the tenant bills invited users. One user moves each counter by one at most.
        // (DynamoDB refuses values the expressions do not use, so each clause adds its own.)
        if delta.active > 0 {
            conditions.push(
                "(attribute_not_exists(seat_limit) OR billing.count_invited = :yes \
                 OR users_active < seat_limit)"
                    .into(),
            );
            update = update.expression_attribute_values(":yes", AttributeValue::Bool(true));
            guard = Guard::SeatLimit;
        }
        if delta.active_or_invited > 0 {
            conditions.push(
                "(attribute_not_exists(seat_limit) OR billing.count_invited = :no \
                 OR users_active_or_invited < seat_limit)"
                    .into(),
            );
            update = update.expression_attribute_values(":no", AttributeValue::Bool(false));
            guard = Guard::SeatLimit;
        }
        if guard == Guard::SeatLimit {
            self.seat_tenant = Some(tenant.clone());
        }
        let update = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .build()
            .map_err(StoreError::build)?;
        self.push(TransactWriteItem::builder().update(update).build(), guard);
        Ok(())
    }

    /// The tenant whose seat limit this transaction checks.
    pub(crate) fn seat_tenant(&self) -> Option<&TenantId> {
        self.seat_tenant.as_ref()
    }

    /// Commits, retrying a few times when cancelled only by concurrent transactions.
    pub(crate) async fn commit(self, client: &Client) -> Result<(), StoreError> {
        let mut backoff = CONFLICT_BACKOFF;
        loop {
            let result = client
                .transact_write_items()
                .set_transact_items(Some(self.items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons: Vec<Option<String>> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => return Err(StoreError::aws(err)),
            };
            if let Some(guard) = reasons
                .iter()
                .zip(&self.guards)
                .filter(|(code, _)| code.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(_, g)| *g)
                .min()
            {
                return Err(guard.error());
            }
            let conflicted = reasons
                .iter()
                .any(|c| c.as_deref() == Some("TransactionConflict"));
            if !conflicted {
                // An item over its partition's or the table's throughput cancels the whole
                // transaction: worth trying again later, like a throttled request.
                let throttled = reasons.iter().any(|c| {
                    matches!(
                        c.as_deref(),
                        Some("ThrottlingError" | "ProvisionedThroughputExceeded")
                    )
                });
                let mut e = StoreError::aws(err);
                if let StoreError::Aws { retryable, .. } = &mut e {
                    *retryable |= throttled;
                }
                return Err(e);
            }
            let Some(delay) = backoff.next_delay() else {
                return Err(StoreError::Contention);
            };
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_delta() -> Vec<TenantDelta> {
        let mut all = Vec::new();
        for admins in -1..=1 {
            for active in -1..=1 {
                for active_or_invited in -1..=1 {
                    all.push(TenantDelta {
                        admins,
                        active,
                        active_or_invited,
                    });
                }
            }
        }
        all
    }

    #[test]
    fn every_tenant_counter_update_uses_exactly_the_values_it_declares() {
        let tenant = TenantId::parse("acme").unwrap();
        for delta in every_delta() {
            let mut tx = Transaction::new("t");
            tx.tenant_guard(&tenant, delta).unwrap();
            assert_eq!(unused_placeholders(&tx.items[0]), Vec::<String>::new());
            let takes_seat = delta.active > 0 || delta.active_or_invited > 0;
            assert_eq!(tx.seat_tenant.is_some(), takes_seat, "{delta:?}");
        }
    }

    #[test]
    fn an_unused_value_or_name_is_found() {
        let check = ConditionCheck::builder()
            .table_name("t")
            .key("pk", AttributeValue::S("x".into()))
            .key("sk", AttributeValue::S("y".into()))
            .condition_expression("#a = :one")
            .expression_attribute_names("#a", "a")
            .expression_attribute_names("#b", "b")
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":on", num(1))
            .build()
            .unwrap();
        let item = TransactWriteItem::builder().condition_check(check).build();
        let mut unused = unused_placeholders(&item);
        unused.sort();
        assert_eq!(unused, ["#b", ":on"]);
    }
}
