//! Account mails and password changes in the table: queuing a reset link or a sign-in code in
//! the outbox (the same `INVITE` items send-invitations mails), setting a password through a
//! link, changing it while signed in, and spending a code.
//!
//! Every password change also moves the user's `revoked_before` in the same transaction, so the
//! change voids every session, refresh family, access token and reset link from before it
//! ([`crate::domain::TokenState::of`]).

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use tracing::instrument;

use super::invitations::due_key;
use super::signin::SIGNIN_SK;
use super::tx::{Guard, Transaction};
use super::{Store, StoreError, items, keys};
use crate::domain::{Invitation, InvitationStatus, TokenDigest, User};

/// Wrong codes that end a code (ASVS 5.0 §6.6.3 asks for a bound; rollcall: five).
pub const CODE_TRIES: u32 = 5;

/// What entering a code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeOutcome {
    /// Right: the code is spent.
    Accepted,
    /// Wrong; this many tries are left.
    Wrong {
        /// Tries left (0: the code is dead).
        left: u32,
    },
    /// The code can't be used any more (spent, superseded, expired, out of tries) or another
    /// attempt moved it first.
    Gone,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn invitation_key(i: &Invitation) -> items::Item {
    items::key(
        keys::user_pk(&i.tenant, &i.user),
        &keys::invitation_sk(&i.id),
    )
}

/// Adds "the user's sessions from before `at` are void" to `tx`.
pub(crate) fn revoke_in(
    tx: &mut Transaction,
    user: &User,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.update(
        Update::builder()
            .set_key(Some(items::key(
                keys::user_pk(&user.tenant, &user.id),
                SIGNIN_SK,
            )))
            .update_expression("SET entity = :e, revoked_before = :at")
            .expression_attribute_values(":e", s("sign_in"))
            .expression_attribute_values(":at", s(at.to_rfc3339())),
        Guard::UserVersion,
    )
}

impl Store {
    /// Queues an account mail (a reset link, a code) for `user` and supersedes the older items
    /// of its kind in `supersede`, if the user is still there. Unlike an invitation it needs no
    /// import lock: a running import must not stop people from signing in.
    #[instrument(skip_all, fields(tenant_id = %user.tenant, user_id = %user.id, kind = item.kind().as_str()))]
    pub async fn queue_account_mail(
        &self,
        user: &User,
        supersede: &[&Invitation],
        item: &Invitation,
    ) -> Result<(), StoreError> {
        let mut tx = Transaction::new(&self.table);
        let check = ConditionCheck::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::user_pk(&user.tenant, &user.id),
                keys::USER_SK,
            )))
            .condition_expression("attribute_exists(pk) AND #state <> :deleted")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":deleted", s("deleted"))
            .build()
            .map_err(StoreError::build)?;
        tx.push_check(
            TransactWriteItem::builder().condition_check(check).build(),
            Guard::UserVersion,
        );
        self.add_invitation(&mut tx, supersede, item)?;
        self.commit(tx).await
    }

    /// Sets a new password through a link (an invitation's or a reset's): like
    /// [`Store::accept_invitation`], and a reset also voids the user's sessions from before now.
    pub async fn set_password_by_link(
        &self,
        before: &User,
        after: User,
        item: &Invitation,
        digest: &TokenDigest,
        revoke_sessions: bool,
    ) -> Result<User, StoreError> {
        self.accept_link(before, after, item, digest, revoke_sessions)
            .await
    }

    /// Changes the password of a signed-in user (who proved the current one): the user is
    /// written at the version read and every session from before now is void. The caller keeps
    /// its own session by starting a new one after `now`.
    #[instrument(skip_all, fields(tenant_id = %before.tenant, user_id = %before.id))]
    pub async fn change_password(
        &self,
        before: &User,
        after: User,
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let (mut tx, after) = self.user_update_tx(before, after, self.clock.now())?;
        revoke_in(&mut tx, before, at)?;
        self.commit(tx).await?;
        Ok(after)
    }

    /// Enters a code against `item` (a sent, unsuperseded code mail as read). `right` says
    /// whether the typed code's digest is the item's (compared by the caller in constant
    /// time). Either way the write is conditional on the item as read, so concurrent guesses
    /// are counted one by one and a code is spent once.
    #[instrument(skip_all, fields(tenant_id = %item.tenant, user_id = %item.user))]
    pub async fn enter_code(
        &self,
        item: &Invitation,
        right: bool,
    ) -> Result<CodeOutcome, StoreError> {
        let now = self.clock.now();
        let open = "#s = :sent AND attribute_not_exists(superseded_by) AND \
                    link_expires_at > :now AND (attribute_not_exists(wrong_codes) OR wrong_codes = :w)";
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(invitation_key(item)))
            .condition_expression(open)
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sent", s(InvitationStatus::Sent.as_str()))
            .expression_attribute_values(":now", s(due_key(now)))
            .expression_attribute_values(":w", AttributeValue::N(item.wrong_codes.to_string()));
        let wrong = item.wrong_codes + 1;
        update = if right {
            update
                .update_expression("SET #s = :to, accepted_at = :now REMOVE gsi4pk, gsi4sk")
                .expression_attribute_values(":to", s(InvitationStatus::Accepted.as_str()))
        } else if wrong >= CODE_TRIES {
            update
                .update_expression(
                    "SET #s = :to, wrong_codes = :nw, failure_code = :why REMOVE gsi4pk, gsi4sk",
                )
                .expression_attribute_values(":to", s(InvitationStatus::Expired.as_str()))
                .expression_attribute_values(":nw", AttributeValue::N(wrong.to_string()))
                .expression_attribute_values(":why", s("too_many_tries"))
        } else {
            update
                .update_expression("SET wrong_codes = :nw")
                .expression_attribute_values(":nw", AttributeValue::N(wrong.to_string()))
        };
        match update.send().await {
            Ok(_) if right => Ok(CodeOutcome::Accepted),
            Ok(_) => Ok(CodeOutcome::Wrong {
                left: CODE_TRIES.saturating_sub(wrong),
            }),
            Err(e)
                if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e)
                    == Some("ConditionalCheckFailedException") =>
            {
                Ok(CodeOutcome::Gone)
            }
            Err(e) => Err(StoreError::aws(e)),
        }
    }

    /// Counts one event of `counter` (e.g. `RESET`) from `address` in the current hour and
    /// returns the hour's count with it. The counter expires an hour after its hour ends.
    pub async fn count_address_event(
        &self,
        address: &str,
        counter: &str,
    ) -> Result<u32, StoreError> {
        let now = self.clock.now();
        let out = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::address_pk(address),
                &format!("{counter}#{}", crate::oidc::throttle::hour_of(now)),
            )))
            .update_expression("SET entity = :e, expires_at = :ttl ADD events :one")
            .expression_attribute_values(":e", s("address_counter"))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((now + Duration::hours(2)).timestamp().to_string()),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(out
            .attributes
            .as_ref()
            .and_then(|a| a.get("events"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX))
    }
}
