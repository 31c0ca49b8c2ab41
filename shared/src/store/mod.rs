//! The DynamoDB store: the single-table design of the brief.
//!
//! Every write that touches more than one item is one `TransactWriteItems`, so a user, its email
//! and login-id claims, its invitation outbox item, the tenant's admin counter, the import-lock
//! check and an idempotency record commit together or not at all. Every update and delete is
//! conditional on the user's `version` (optimistic concurrency). A failed condition is mapped back
//! to the item that failed it, giving a typed error such as [`StoreError::EmailTaken`].

mod account;
mod billing;
mod cursor;
mod imports;
mod invitations;
pub(crate) mod items;
mod keys;
mod list;
mod metrics;
pub mod schema;
mod signin;
mod tx;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tracing::instrument;

use crate::clock::Clock;
use crate::domain::{Email, Invitation, LoginId, SeatUsage, Tenant, TenantId, User, UserId};

pub use account::{CODE_TRIES, CodeOutcome};
pub use billing::{BillingMember, BillingSnapshot, Members, SnapshotWrite};
pub use cursor::{CursorError, CursorSigner};
pub use imports::{IMPORT_RETENTION_DAYS, JournalRead, SeatCap, Written};
pub use invitations::{
    INVITATION_RETENTION_DAYS, REDRIVE_AFTER_MINUTES, TOKEN_RETENTION_DAYS, TokenRecord,
    UserInvitations,
};
pub use items::TOMBSTONE_RETENTION_DAYS;
pub use keys::{deleted_users_pk, listing_shard, live_users_pk};
pub use list::{ListQuery, Page, PageKey, ShardMove, SortBy, SortOrder};
pub use metrics::RequestCounter;
pub use signin::{
    AuthCode, CallerState, Family, Redeemed, RefreshRecord, Session, SignInLookup, SignInState,
    Spend, StoredKey,
};
pub use tx::TenantDelta;
use tx::Transaction;

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user (or tenant) does not exist, or is deleted.
    #[error("not found")]
    NotFound,
    /// The tenant named in the request does not exist.
    #[error("tenant not found")]
    TenantNotFound,
    /// A tenant with this id already exists.
    #[error("tenant already exists")]
    TenantExists,
    /// The user changed since the version the write was based on.
    #[error("the user was changed by someone else")]
    VersionConflict,
    /// Another user of the tenant has this email address (in any case).
    #[error("email address already in use")]
    EmailTaken,
    /// Another user of the tenant has this login id (in any case).
    #[error("login id already in use")]
    LoginIdTaken,
    /// A bulk import holds the tenant's lock.
    #[error("a bulk import is in progress for this tenant")]
    ImportInProgress,
    /// The import job no longer holds the tenant's lock (its lease ran out and another took it).
    #[error("the import job lost the tenant's lock")]
    ImportLockLost,
    /// The write would leave the tenant without an active admin.
    #[error("the tenant's last active admin can't be removed")]
    LastAdmin,
    /// The write would take a seat and every seat of the tenant's limit is taken.
    #[error("the tenant's seat limit ({limit}) is reached")]
    SeatLimitReached {
        /// The limit (0 until read back from the tenant).
        limit: u32,
    },
    /// The `Idempotency-Key` was used before; the caller decides between replay and refusal.
    #[error("idempotency key already used")]
    IdempotencyKeyUsed,
    /// The invitation moved on (sent, closed or superseded) since it was read.
    #[error("the invitation changed since it was read")]
    InvitationChanged,
    /// The invitation link was used already.
    #[error("the invitation link was used already")]
    TokenUsed,
    /// The grant (a refresh family and its access tokens) was revoked.
    #[error("the grant was revoked")]
    GrantRevoked,
    /// The signing keys changed since they were read (another rotation won).
    #[error("the signing keys changed since they were read")]
    KeysChanged,
    /// This step of an import job (a chunk and its journal entry) was written before, by this
    /// delivery or another: nothing to do.
    #[error("the import step was written already")]
    AlreadyWritten,
    /// Too many concurrent transactions touched the same items; worth retrying.
    #[error("the store is busy with conflicting writes; retry")]
    Contention,
    /// An item in the table does not make a valid value.
    #[error("corrupt item: {0}")]
    Corrupt(String),
    /// DynamoDB refused or failed the request.
    #[error("DynamoDB request failed: {message}")]
    Aws {
        /// The SDK's description, with its error context.
        message: String,
        /// Whether retrying later may succeed (throttling, service errors, timeouts).
        retryable: bool,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    pub(crate) fn aws<E>(e: SdkError<E, HttpResponse>) -> StoreError
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        StoreError::Aws {
            message: DisplayErrorContext(&e).to_string(),
            retryable: crate::retry::is_transient(&e),
            source: Box::new(e),
        }
    }

    pub(crate) fn build(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
        StoreError::Corrupt(format!("request could not be built: {e}"))
    }

    /// Whether the same request may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Aws { retryable, .. } => *retryable,
            StoreError::Contention => true,
            StoreError::NotFound
            | StoreError::TenantNotFound
            | StoreError::TenantExists
            | StoreError::VersionConflict
            | StoreError::EmailTaken
            | StoreError::LoginIdTaken
            | StoreError::ImportInProgress
            | StoreError::ImportLockLost
            | StoreError::LastAdmin
            | StoreError::SeatLimitReached { .. }
            | StoreError::IdempotencyKeyUsed
            | StoreError::InvitationChanged
            | StoreError::TokenUsed
            | StoreError::KeysChanged
            | StoreError::GrantRevoked
            | StoreError::AlreadyWritten
            | StoreError::Corrupt(_) => false,
        }
    }
}

/// Whether a single conditional write was made (`false`: its condition did not hold).
pub(crate) fn condition_held<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, StoreError>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(|s| s.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::aws(e)),
    }
}

/// The remembered outcome of a `POST` carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// SHA-256 (hex) of the request body: a different body under the same key is refused.
    pub request_hash: String,
    /// The HTTP status first returned.
    pub status: u16,
    /// The body first returned.
    pub body: String,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// The store: a DynamoDB client, the table, and the clock that stamps writes.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("table", &self.table).finish()
    }
}

impl Store {
    /// A store over `table`.
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Store {
            client,
            table: Arc::from(table.into()),
            clock,
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The clock that stamps writes.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Creates a tenant; refused if the id is taken.
    #[instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(items::tenant_to_item(tenant)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if condition_held(result)? {
            Ok(())
        } else {
            Err(StoreError::TenantExists)
        }
    }

    /// Reads a tenant.
    #[instrument(skip_all, fields(tenant_id = %id))]
    pub async fn get_tenant(&self, id: &TenantId) -> Result<Tenant, StoreError> {
        Ok(self.tenant_and_seats(id).await?.0)
    }

    /// Reads a tenant and the seats its users hold.
    #[instrument(skip_all, fields(tenant_id = %id))]
    pub async fn tenant_and_seats(&self, id: &TenantId) -> Result<(Tenant, SeatUsage), StoreError> {
        let item = self.read_item(keys::tenant_pk(id), keys::TENANT_SK).await?;
        let item = item.ok_or(StoreError::TenantNotFound)?;
        items::tenant_from_item(item)
    }

    /// Writes a new user with its email and login-id claims, its invitation (outbox item) if one
    /// is given, the admin counter when the user is an active admin, and the idempotency record
    /// if one is given: one `TransactWriteItems`.
    #[instrument(skip_all, fields(tenant_id = %user.tenant, user_id = %user.id))]
    pub async fn create_user(
        &self,
        user: &User,
        invitation: Option<&Invitation>,
        idempotency: Option<(&str, &IdempotencyRecord)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = Transaction::new(&self.table);
        if let Some((key, record)) = idempotency {
            tx.put_idempotency(&user.tenant, key, record, now)?;
        }
        tx.create_user(user)?;
        if let Some(invitation) = invitation {
            tx.put_invitation(invitation)?;
        }
        tx.import_lock_free(&user.tenant, now)?;
        tx.tenant_guard(&user.tenant, TenantDelta::between(None, Some(user)))?;
        self.commit(tx).await
    }

    /// Reads a live user (tombstones are not found).
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %id))]
    pub async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<User, StoreError> {
        let item = self
            .read_item(keys::user_pk(tenant, id), keys::USER_SK)
            .await?;
        let item = item.ok_or(StoreError::NotFound)?;
        items::user_from_item(item)?.ok_or(StoreError::NotFound)
    }

    /// Finds a live user by email address (any case), through its claim.
    pub async fn find_by_email(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Option<User>, StoreError> {
        self.find_by_claim(tenant, keys::email_claim_pk(tenant, &email.key()))
            .await
    }

    /// Finds a live user by login id (any case), through its claim.
    pub async fn find_by_login_id(
        &self,
        tenant: &TenantId,
        login: &LoginId,
    ) -> Result<Option<User>, StoreError> {
        self.find_by_claim(tenant, keys::login_claim_pk(tenant, &login.key()))
            .await
    }

    async fn find_by_claim(
        &self,
        tenant: &TenantId,
        pk: String,
    ) -> Result<Option<User>, StoreError> {
        let item = self.read_item(pk, keys::CLAIM_SK).await?;
        let Some(claim) = item else {
            return Ok(None);
        };
        let uid = items::string_attr(&claim, "user_id")
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| StoreError::Corrupt("claim without a user id".into()))?;
        match self.get_user(tenant, &uid).await {
            Ok(u) => Ok(Some(u)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `before` with `after` if nobody changed the user since `before` was read.
    /// Moves the email and login-id claims when those change, keeps the admin counter exact and
    /// appends to the state history. Returns the user as stored (version raised by one).
    #[instrument(skip_all, fields(tenant_id = %before.tenant, user_id = %before.id))]
    pub async fn update_user(&self, before: &User, after: User) -> Result<User, StoreError> {
        let now = self.clock.now();
        let (tx, after) = self.user_update_tx(before, after, now)?;
        self.commit(tx).await?;
        Ok(after)
    }

    /// The transaction that replaces `before` with `after` (see [`Store::update_user`]), and
    /// `after` as it will be stored.
    pub(crate) fn user_update_tx(
        &self,
        before: &User,
        mut after: User,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Transaction, User), StoreError> {
        after.version = before.version + 1;
        after.touch(now);
        let mut tx = Transaction::new(&self.table);
        tx.update_user(before, &after)?;
        tx.import_lock_free(&before.tenant, now)?;
        tx.tenant_guard(
            &before.tenant,
            TenantDelta::between(Some(before), Some(&after)),
        )?;
        Ok((tx, after))
    }

    /// Deletes a user if nobody changed it since it was read: the user becomes a tombstone
    /// (kept for billing history, out of every listing) and its claims are released, so the
    /// email and login id can be used again.
    #[instrument(skip_all, fields(tenant_id = %user.tenant, user_id = %user.id))]
    pub async fn delete_user(&self, user: &User) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = Transaction::new(&self.table);
        tx.delete_user(user, now)?;
        tx.import_lock_free(&user.tenant, now)?;
        tx.tenant_guard(&user.tenant, TenantDelta::between(Some(user), None))?;
        self.commit(tx).await
    }

    /// Reads the record left by an earlier request with this idempotency key.
    pub async fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let item = self
            .read_item(
                keys::idempotency_pk(tenant, &tx::digest(key)),
                keys::IDEMPOTENCY_SK,
            )
            .await?;
        let Some(item) = item else {
            return Ok(None);
        };
        let field = |name: &str| {
            items::string_attr(&item, name)
                .map(str::to_owned)
                .ok_or_else(|| StoreError::Corrupt(format!("idempotency record without {name}")))
        };
        let status = item
            .get("status")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("idempotency record without status".into()))?;
        Ok(Some(IdempotencyRecord {
            request_hash: field("request_hash")?,
            status,
            body: field("body")?,
        }))
    }

    /// Reads one item, strongly consistent.
    pub(crate) async fn read_item(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<items::Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(out.item)
    }

    /// Deletes the item at `pk`/`sk`, if there is one.
    pub(crate) async fn delete_at(&self, pk: String, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(pk, sk)))
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(())
    }

    /// Sends `query` page after page to the last, handing every item to `each`; returns the
    /// number of pages (requests).
    pub(crate) async fn query_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        mut each: impl FnMut(items::Item) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut start = None;
        let mut pages = 0;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::aws)?;
            pages += 1;
            for item in out.items.unwrap_or_default() {
                each(item)?;
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(pages);
            }
        }
    }

    /// Commits a transaction. The seat-limit condition also fails when the tenant is missing,
    /// so that failure is told apart by reading the tenant.
    pub(crate) async fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        let tenant = tx.seat_tenant().cloned();
        match (tx.commit(&self.client).await, tenant) {
            (Err(StoreError::SeatLimitReached { .. }), Some(tenant)) => {
                let (tenant, _) = self.tenant_and_seats(&tenant).await?;
                Err(StoreError::SeatLimitReached {
                    limit: tenant.seat_limit.unwrap_or_default(),
                })
            }
            (result, _) => result,
        }
    }
}
