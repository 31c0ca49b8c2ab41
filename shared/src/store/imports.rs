//! Import jobs, the tenant's import lock, the strongly consistent read of the users a file
//! names, and the journalled apply: the plan's effect on the tenant's counters is reserved
//! once, then every chunk of rows commits in one `TransactWriteItems` with its own journal
//! entry, touching no item another chunk touches, so many chunks can be in flight and a
//! redelivered job writes exactly the chunks the journal lacks.

use foldhash::{HashMap, HashMapExt};
use std::time::Duration;

use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::tx::{Guard, TenantDelta, Transaction};
use super::{Store, StoreError, condition_held, items, keys};
use crate::domain::{BillingPolicy, ImportId, Invitation, TenantId, UserId};
use crate::import::{Chunk, Directory, ImportJob, Planned};

/// How long a job is kept after it was created.
pub const IMPORT_RETENTION_DAYS: i64 = 90;

/// Keys one `BatchGetItem` may ask for.
const MAX_BATCH_GET: usize = 100;

/// `BatchGetItem` requests of one file's check in flight at once: 16 × 100 strongly consistent
/// reads of items under 4 KB ask for 1,600 read units per round trip, so at 10–20 ms a round
/// trip the table's default 40,000 read units a second, not the chain of requests, sets the
/// pace of a 100,000-row check.
const BATCH_READS_IN_FLIGHT: usize = 16;

fn num(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// When a lease taken at `now` ends (a lease too long for a date ends at once: a
/// configuration error shows as a lost lock, never as a lock that never ends).
fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::zero())
}

fn job_sk(id: &ImportId) -> String {
    format!("IMPORT#{id}")
}

#[derive(Serialize, Deserialize)]
struct JobItem {
    pk: String,
    sk: String,
    entity: String,
    expires_at: i64,
    #[serde(flatten)]
    job: ImportJob,
}

fn job_to_item(job: &ImportJob) -> Result<items::Item, StoreError> {
    let expires = job.created_at + chrono::Duration::days(IMPORT_RETENTION_DAYS);
    serde_dynamo::to_item(JobItem {
        pk: keys::tenant_pk(&job.tenant),
        sk: job_sk(&job.id),
        entity: "import".into(),
        expires_at: expires.timestamp(),
        job: job.clone(),
    })
    .map_err(|e| StoreError::Corrupt(format!("import job item: {e}")))
}

fn job_from_item(item: items::Item) -> Result<ImportJob, StoreError> {
    let item: JobItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Corrupt(format!("import job item: {e}")))?;
    Ok(item.job)
}

/// Batch `n` of `all`, [`MAX_BATCH_GET`] at a time.
fn batch_of<T>(all: &[T], n: usize) -> impl Iterator<Item = &T> {
    all.iter().skip(n * MAX_BATCH_GET).take(MAX_BATCH_GET)
}

/// What a chunk's counter update may assume: the seat limit read under the lock, and the
/// billing policy that decides which counter it limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatCap {
    /// The tenant's seat limit when the plan was made (`None`: no limit).
    pub limit: Option<u32>,
    /// The billing policy then.
    pub policy: BillingPolicy,
}

impl Store {
    /// Writes a new job.
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id))]
    pub async fn create_import(&self, job: &ImportJob) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(job_to_item(job)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(())
    }

    /// Reads a job, strongly consistent.
    #[instrument(skip_all, fields(tenant_id = %tenant, import_id = %id))]
    pub async fn get_import(
        &self,
        tenant: &TenantId,
        id: &ImportId,
    ) -> Result<ImportJob, StoreError> {
        let item = self.read_item(keys::tenant_pk(tenant), &job_sk(id)).await?;
        job_from_item(item.ok_or(StoreError::NotFound)?)
    }

    /// The tenant's most recent jobs, newest first.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn list_imports(
        &self,
        tenant: &TenantId,
        limit: i32,
    ) -> Result<Vec<ImportJob>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::tenant_pk(tenant)))
            .expression_attribute_values(":prefix", AttributeValue::S("IMPORT#".into()))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(StoreError::aws)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(job_from_item)
            .collect()
    }

    /// Writes `job` if nobody wrote it since it was read (its version), raising the version.
    /// [`StoreError::VersionConflict`] if someone did.
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id, status = job.status.as_str()))]
    pub async fn save_import(&self, job: &mut ImportJob) -> Result<(), StoreError> {
        let read_version = job.version;
        job.version += 1;
        job.updated_at = self.clock.now();
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(job_to_item(job)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", num(read_version))
            .send()
            .await;
        match condition_held(result) {
            Ok(true) => Ok(()),
            Ok(false) => {
                job.version = read_version;
                Err(StoreError::VersionConflict)
            }
            Err(e) => {
                job.version = read_version;
                Err(e)
            }
        }
    }

    /// Takes the tenant's import lock for `job` until `lease` from now: granted when nobody
    /// holds it, when the holder's lease ran out, or when `job` holds it already (a resumed
    /// delivery). [`StoreError::ImportInProgress`] otherwise. Returns the fencing token of this
    /// holding: every taking raises it, so a delivery that was taken over finds out at its
    /// next renewal.
    #[instrument(skip_all, fields(tenant_id = %tenant, import_id = %job))]
    pub async fn acquire_import_lock(
        &self,
        tenant: &TenantId,
        job: &ImportId,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let until = lease_end(now, lease);
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::tenant_pk(tenant),
                keys::IMPORT_LOCK_SK,
            )))
            .update_expression(
                "SET entity = :entity, job_id = :job, lease_expires_at = :until ADD fence :one",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR lease_expires_at < :now OR job_id = :job",
            )
            .expression_attribute_values(":entity", AttributeValue::S("import_lock".into()))
            .expression_attribute_values(":job", AttributeValue::S(job.to_string()))
            .expression_attribute_values(":until", num(until.timestamp_millis()))
            .expression_attribute_values(":now", num(now.timestamp_millis()))
            .expression_attribute_values(":one", num(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out
                .attributes
                .as_ref()
                .and_then(|a| a.get("fence"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("an import lock without its fence".into())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::ImportInProgress)
            }
            Err(e) => Err(StoreError::aws(e)),
        }
    }

    /// Extends the lease of the lock `job` holds under `fence` (the heartbeat).
    /// [`StoreError::ImportLockLost`] if that holding is over (released, or taken by another
    /// job or another delivery of this one).
    pub async fn renew_import_lock(
        &self,
        tenant: &TenantId,
        job: &ImportId,
        fence: u64,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let until = lease_end(self.clock.now(), lease);
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::tenant_pk(tenant),
                keys::IMPORT_LOCK_SK,
            )))
            .update_expression("SET lease_expires_at = :until")
            .condition_expression("job_id = :job AND fence = :fence")
            .expression_attribute_values(":until", num(until.timestamp_millis()))
            .expression_attribute_values(":job", AttributeValue::S(job.to_string()))
            .expression_attribute_values(":fence", num(fence))
            .send()
            .await;
        if condition_held(result)? {
            Ok(())
        } else {
            Err(StoreError::ImportLockLost)
        }
    }

    /// Releases the lock if `job` holds it; nothing if it does not (already released).
    pub async fn release_import_lock(
        &self,
        tenant: &TenantId,
        job: &ImportId,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::tenant_pk(tenant),
                keys::IMPORT_LOCK_SK,
            )))
            .condition_expression("job_id = :job")
            .expression_attribute_values(":job", AttributeValue::S(job.to_string()))
            .send()
            .await;
        // Not held (any more): nothing to release.
        condition_held(result).map(|_| ())
    }

    /// Reads, strongly consistent, what checking a file needs: the tenant with its counters,
    /// the live users holding the login ids the file names, and the owners of its NEW rows'
    /// emails (login-id and email keys, as `LoginId::key` and `Email::key` give them; each key
    /// once: `BatchGetItem` refuses a request that names a key twice).
    #[instrument(skip_all, fields(tenant_id = %tenant, logins = logins.len(), emails = emails.len()))]
    pub async fn import_directory<S: AsRef<str> + Sync>(
        &self,
        tenant: &TenantId,
        logins: &[S],
        emails: &[S],
    ) -> Result<Directory, StoreError> {
        let item = self
            .read_item(keys::tenant_pk(tenant), keys::TENANT_SK)
            .await?
            .ok_or(StoreError::TenantNotFound)?;
        let active_admins = item
            .get("active_admins")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let (tenant_value, seats) = items::tenant_from_item(item)?;

        // Keys are made a batch at a time as the reads go out, so a large file's keys are never
        // all in memory; the batches are independent, so several are in flight at once.
        let login_batches = logins.len().div_ceil(MAX_BATCH_GET);
        let email_batches = emails.len().div_ceil(MAX_BATCH_GET);
        let claims = self
            .batch_get_all(login_batches + email_batches, |n| {
                if n < login_batches {
                    batch_of(logins, n)
                        .map(|k| {
                            items::key(keys::login_claim_pk(tenant, k.as_ref()), keys::CLAIM_SK)
                        })
                        .collect()
                } else {
                    batch_of(emails, n - login_batches)
                        .map(|k| {
                            items::key(keys::email_claim_pk(tenant, k.as_ref()), keys::CLAIM_SK)
                        })
                        .collect()
                }
            })
            .await?;
        let login_prefix = keys::login_claim_pk(tenant, "");
        let email_prefix = keys::email_claim_pk(tenant, "");
        let mut email_owners = HashMap::new();
        let mut login_owners: Vec<UserId> = Vec::new();
        for claim in claims {
            let (Some(pk), Some(uid)) = (
                items::string_attr(&claim, "pk"),
                items::string_attr(&claim, "user_id").and_then(|s| UserId::parse(s).ok()),
            ) else {
                return Err(StoreError::Corrupt("claim without a key or user id".into()));
            };
            if let Some(email) = pk.strip_prefix(&email_prefix) {
                email_owners.insert(email.to_owned(), uid);
            } else if pk.starts_with(&login_prefix) {
                login_owners.push(uid);
            }
        }
        let mut users = HashMap::with_capacity(login_owners.len());
        let user_batches = login_owners.len().div_ceil(MAX_BATCH_GET);
        let found = self
            .batch_get_all(user_batches, |n| {
                batch_of(&login_owners, n)
                    .map(|u| items::key(keys::user_pk(tenant, u), keys::USER_SK))
                    .collect()
            })
            .await?;
        for item in found {
            if let Some(user) = items::user_from_item(item)? {
                users.insert(user.profile.login_id.key().into_owned(), Box::new(user));
            }
        }
        Ok(Directory {
            tenant: tenant_value,
            seats,
            active_admins,
            users,
            email_owners,
        })
    }

    /// Reads `count` batches of keys, [`BATCH_READS_IN_FLIGHT`] at once; `keys(n)` makes batch
    /// `n` as it goes out.
    async fn batch_get_all(
        &self,
        count: usize,
        keys: impl Fn(usize) -> Vec<items::Item> + Sync,
    ) -> Result<Vec<items::Item>, StoreError> {
        use futures::stream::{self, StreamExt as _, TryStreamExt as _};
        let keys = &keys;
        let found: Vec<Vec<items::Item>> = stream::iter(0..count)
            .map(|n| self.batch_get(keys(n)))
            .buffer_unordered(BATCH_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Reads up to 100 keys with one `BatchGetItem`, strongly consistent, asking again for
    /// what DynamoDB leaves unprocessed.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<items::Item>,
    ) -> Result<Vec<items::Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(StoreError::build)?,
        );
        // Unprocessed keys (throttling) are asked for again, backing off; after the last
        // retry the read fails as retryable rather than looping for ever.
        let mut backoff = crate::retry::Backoff::new(Duration::from_millis(50), 8);
        while let Some(request) = pending.take() {
            let out = self
                .client
                .batch_get_item()
                .request_items(self.table.as_ref(), request)
                .send()
                .await
                .map_err(StoreError::aws)?;
            if let Some(mut responses) = out.responses {
                found.extend(responses.remove(self.table.as_ref()).unwrap_or_default());
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(self.table.as_ref()))
                .filter(|k| !k.keys().is_empty());
            if pending.is_some() {
                let Some(delay) = backoff.next_delay() else {
                    return Err(StoreError::Contention);
                };
                tokio::time::sleep(delay).await;
            }
        }
        Ok(found)
    }

    /// Moves `job` to `applying` and reserves what its whole plan does to the tenant's
    /// counters (`delta`), in one transaction: the job at the version read, the counters
    /// within the seat limit read under the lock (`cap`) and leaving an active admin. Chunks
    /// then touch no counter, so they can be written at the same time.
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id))]
    pub async fn begin_import_apply(
        &self,
        job: &mut ImportJob,
        delta: TenantDelta,
        cap: SeatCap,
    ) -> Result<(), StoreError> {
        let mut next = job.clone();
        next.status = crate::import::ImportStatus::Applying;
        next.reserved = Some(delta);
        let mut tx = Transaction::new(&self.table);
        self.put_job_at_version(&mut tx, &mut next)?;
        tx.update(counters(&job.tenant, delta, Some(cap)), Guard::SeatLimit)?;
        tx.commit(&self.client).await.map_err(|e| match e {
            StoreError::SeatLimitReached { .. } => StoreError::SeatLimitReached {
                limit: cap.limit.unwrap_or(0),
            },
            e => e,
        })?;
        *job = next;
        Ok(())
    }

    /// Writes one chunk of a job's plan with its journal entry (`ROWS#{n}`, which must be
    /// new), in one transaction that touches no item another chunk touches. `at` stamps the
    /// changes (the job's apply time); `fence` names the lock holding that wrote it.
    /// [`Written::Before`] if the journal has the chunk already (another delivery wrote it).
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id, chunk = chunk.index))]
    pub async fn apply_import_chunk(
        &self,
        job: &ImportJob,
        chunk: &Chunk,
        at: DateTime<Utc>,
        fence: u64,
    ) -> Result<Written, StoreError> {
        let mut tx = Transaction::new(&self.table);
        let mut delta = TenantDelta::default();
        for change in &chunk.changes {
            delta += TenantDelta::of_change(change);
            match change {
                Planned::Create { user, .. } => tx.create_user(user)?,
                Planned::Update { before, after, .. } => {
                    let mut after = (**after).clone();
                    after.version = before.version + 1;
                    after.touch(at);
                    tx.update_user(before, &after)?;
                }
                Planned::Delete { user, .. } => tx.delete_user(user, at)?,
            }
        }
        let rows = chunk.changes.len() as u64;
        let mut entry = journal_entry(job, ROWS, chunk.index, rows, fence);
        entry.insert("d_admins".into(), num(delta.admins));
        entry.insert("d_active".into(), num(delta.active));
        entry.insert("d_active_or_invited".into(), num(delta.active_or_invited));
        tx.claim(entry, Guard::JournalEntry)?;
        match tx.commit(&self.client).await {
            Ok(()) => Ok(Written::Now { rows }),
            Err(StoreError::AlreadyWritten) => Ok(Written::Before),
            Err(e) => Err(e),
        }
    }

    /// Writes chunk `index` of the invitations of the users a job created, with its journal
    /// entry (`INVITES#{n}`, which must be new): the stream hands them to the sender once they
    /// are in the table. [`Written::Before`] if the journal has the chunk already.
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id, chunk = index))]
    pub async fn release_import_invitations(
        &self,
        job: &ImportJob,
        index: u32,
        invitations: &[Invitation],
        fence: u64,
    ) -> Result<Written, StoreError> {
        let mut tx = Transaction::new(&self.table);
        for invitation in invitations {
            tx.put_invitation(invitation)?;
        }
        let rows = invitations.len() as u64;
        tx.claim(
            journal_entry(job, INVITES, index, rows, fence),
            Guard::JournalEntry,
        )?;
        match tx.commit(&self.client).await {
            Ok(()) => Ok(Written::Now { rows }),
            Err(StoreError::AlreadyWritten) => Ok(Written::Before),
            Err(e) => Err(e),
        }
    }

    /// Reads a job's journal, strongly consistent: which chunks of rows and of invitations
    /// are committed, how many rows they hold, and how they moved the tenant's counters.
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id))]
    pub async fn import_journal(&self, job: &ImportJob) -> Result<JournalRead, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(keys::import_journal_pk(&job.tenant, &job.id)),
            );
        let mut read = JournalRead::default();
        self.query_all(query, |item| {
            let number = |name: &str| -> Result<i64, StoreError> {
                item.get(name)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("journal entry without {name}")))
            };
            let sk = items::string_attr(&item, "sk").unwrap_or_default();
            let (kind, n) = sk
                .split_once('#')
                .and_then(|(k, n)| Some((k, n.parse::<u32>().ok()?)))
                .ok_or_else(|| StoreError::Corrupt(format!("journal entry {sk}")))?;
            match kind {
                ROWS => {
                    read.rows_done.push(n);
                    read.applied_rows += u64::try_from(number("rows")?).unwrap_or(0);
                    read.written += TenantDelta {
                        admins: number("d_admins")?,
                        active: number("d_active")?,
                        active_or_invited: number("d_active_or_invited")?,
                    };
                }
                INVITES => read.invitations_done.push(n),
                _ => return Err(StoreError::Corrupt(format!("journal entry {sk}"))),
            }
            Ok(())
        })
        .await?;
        Ok(read)
    }

    /// Writes how far the apply got (`job.journal`) onto the stored job while it applies,
    /// without moving its version: the progress `GET /imports/{id}` shows. Nothing if the job
    /// is no longer applying.
    pub async fn record_import_progress(&self, job: &ImportJob) -> Result<(), StoreError> {
        let journal = serde_dynamo::to_attribute_value(job.journal)
            .map_err(|e| StoreError::Corrupt(format!("import journal: {e}")))?;
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::tenant_pk(&job.tenant),
                &job_sk(&job.id),
            )))
            .update_expression("SET journal = :journal")
            .condition_expression("#status = :applying")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":journal", journal)
            .expression_attribute_values(":applying", AttributeValue::S("applying".into()))
            .send()
            .await;
        condition_held(result).map(|_| ())
    }

    /// Ends an applying job as failed (its `error` set by the caller), giving back the part of
    /// its reservation that its unwritten chunks held, in one transaction with the job at the
    /// version read: the counters then count exactly the users in the table.
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id))]
    pub async fn fail_applying_import(&self, job: &mut ImportJob) -> Result<(), StoreError> {
        let read = self.import_journal(job).await?;
        read.fill(&mut job.journal);
        let mut next = job.clone();
        next.status = crate::import::ImportStatus::Failed;
        next.finished_at = Some(self.clock.now());
        let mut tx = Transaction::new(&self.table);
        if let Some(reserved) = job.reserved {
            let unwritten = reserved - read.written;
            next.reserved = Some(read.written);
            if unwritten != TenantDelta::default() {
                tx.update(
                    counters(&job.tenant, TenantDelta::default() - unwritten, None),
                    Guard::TenantExists,
                )?;
            }
        }
        self.put_job_at_version(&mut tx, &mut next)?;
        tx.commit(&self.client).await?;
        *job = next;
        Ok(())
    }

    /// Adds the put of `job` at the version it was read at, raising the version.
    fn put_job_at_version(
        &self,
        tx: &mut Transaction,
        job: &mut ImportJob,
    ) -> Result<(), StoreError> {
        let read_version = job.version;
        job.version += 1;
        job.updated_at = self.clock.now();
        tx.put(
            aws_sdk_dynamodb::types::Put::builder()
                .set_item(Some(job_to_item(job)?))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", num(read_version)),
            Guard::ImportJournal,
        )
    }
}

/// Sort key kind of a journal entry of rows.
const ROWS: &str = "ROWS";
/// Sort key kind of a journal entry of invitations.
const INVITES: &str = "INVITES";

/// The journal entry of chunk `n` of `kind`: what it holds and which lock holding wrote it;
/// kept as long as the job.
fn journal_entry(job: &ImportJob, kind: &str, n: u32, rows: u64, fence: u64) -> items::Item {
    let expires = job.created_at + chrono::Duration::days(IMPORT_RETENTION_DAYS);
    items::Item::from([
        (
            "pk".into(),
            AttributeValue::S(keys::import_journal_pk(&job.tenant, &job.id)),
        ),
        ("sk".into(), AttributeValue::S(keys::journal_sk(kind, n))),
        ("entity".into(), AttributeValue::S("import_journal".into())),
        ("rows".into(), num(rows)),
        ("fence".into(), num(fence)),
        ("expires_at".into(), num(expires.timestamp())),
    ])
}

/// Whether a chunk was written by this call or found written already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Committed now, with this many rows (or invitations).
    Now {
        /// Rows (or invitations) in the chunk.
        rows: u64,
    },
    /// Its journal entry was there: another delivery wrote it.
    Before,
}

/// What a job's journal entries say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalRead {
    /// Chunks of rows committed.
    pub rows_done: Vec<u32>,
    /// Chunks of invitations committed.
    pub invitations_done: Vec<u32>,
    /// Rows the committed chunks hold.
    pub applied_rows: u64,
    /// How the committed chunks moved the tenant's counters.
    pub written: TenantDelta,
}

impl JournalRead {
    /// Copies the counts into a job's journal.
    pub fn fill(&self, journal: &mut crate::import::Journal) {
        journal.chunks_done = self.rows_done.len() as u32;
        journal.invitation_chunks_done = self.invitations_done.len() as u32;
        journal.applied_rows = self.applied_rows;
    }
}

/// The update of the tenant's counters by `delta`. With `cap` (a reservation), the tenant must
/// exist, at least one active admin must remain, and, when seats are taken and the tenant had a
/// limit, the counter its policy limits must leave room for all of them (the lock keeps API
/// writes out; this also stops an invitation accepted meanwhile from being overbooked). Without
/// (giving a reservation back), the tenant must only exist.
fn counters(tenant: &TenantId, delta: TenantDelta, cap: Option<SeatCap>) -> UpdateBuilder {
    let mut sets =
        vec!["active_admins = if_not_exists(active_admins, :zero) + :d_admins".to_owned()];
    let mut conditions = vec!["attribute_exists(pk)".to_owned()];
    let mut update = Update::builder()
        .set_key(Some(items::key(keys::tenant_pk(tenant), keys::TENANT_SK)))
        .expression_attribute_values(":zero", num(0))
        .expression_attribute_values(":d_admins", num(delta.admins));
    for (attr, d) in [
        ("users_active", delta.active),
        ("users_active_or_invited", delta.active_or_invited),
    ] {
        sets.push(format!("{attr} = if_not_exists({attr}, :zero) + :d_{attr}"));
        update = update.expression_attribute_values(format!(":d_{attr}"), num(d));
    }
    if let Some(cap) = cap {
        if delta.admins < 0 {
            // Admins after the plan = active_admins + delta >= 1.
            conditions.push("active_admins >= :min_admins".into());
            update = update.expression_attribute_values(":min_admins", num(1 - delta.admins));
        }
        let (counter, taken) = if cap.policy.count_invited {
            ("users_active_or_invited", delta.active_or_invited)
        } else {
            ("users_active", delta.active)
        };
        if let (Some(limit), true) = (cap.limit, taken > 0) {
            // Seats after the plan = counter + taken <= limit. (Every tenant item has its
            // counters, and a condition can't use if_not_exists.)
            conditions.push(format!("{counter} <= :seat_cap"));
            update = update.expression_attribute_values(":seat_cap", num(i64::from(limit) - taken));
        }
    }
    update
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression(conditions.join(" AND "))
}
