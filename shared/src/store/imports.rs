//! Import jobs, the tenant's import lock, the strongly consistent read of the users a file
//! names, and the journalled apply: every chunk of rows commits in one `TransactWriteItems`
//! with the job's journal entry, so a redelivered job resumes at the first chunk not written.

use foldhash::{HashMap, HashMapExt};
use std::time::Duration;

use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, KeysAndAttributes, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::tx::{Guard, TenantDelta, Transaction};
use super::{Store, StoreError, condition_held, items, keys};
use crate::domain::{BillingPolicy, ImportId, Invitation, TenantId, UserId};
use crate::import::{Directory, ImportJob, Planned};

/// How long a job is kept after it was created.
pub const IMPORT_RETENTION_DAYS: i64 = 90;

/// Keys one `BatchGetItem` may ask for.
const MAX_BATCH_GET: usize = 100;

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
    /// delivery). [`StoreError::ImportInProgress`] otherwise.
    #[instrument(skip_all, fields(tenant_id = %tenant, import_id = %job))]
    pub async fn acquire_import_lock(
        &self,
        tenant: &TenantId,
        job: &ImportId,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let until = lease_end(now, lease);
        let item = items::Item::from([
            ("pk".into(), AttributeValue::S(keys::tenant_pk(tenant))),
            ("sk".into(), AttributeValue::S(keys::IMPORT_LOCK_SK.into())),
            ("entity".into(), AttributeValue::S("import_lock".into())),
            ("job_id".into(), AttributeValue::S(job.to_string())),
            ("lease_expires_at".into(), num(until.timestamp_millis())),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR lease_expires_at < :now OR job_id = :job",
            )
            .expression_attribute_values(":now", num(now.timestamp_millis()))
            .expression_attribute_values(":job", AttributeValue::S(job.to_string()))
            .send()
            .await;
        if condition_held(result)? {
            Ok(())
        } else {
            Err(StoreError::ImportInProgress)
        }
    }

    /// Extends the lease of a lock `job` holds (the heartbeat). [`StoreError::ImportLockLost`]
    /// if it no longer holds it.
    pub async fn renew_import_lock(
        &self,
        tenant: &TenantId,
        job: &ImportId,
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
            .condition_expression("job_id = :job")
            .expression_attribute_values(":until", num(until.timestamp_millis()))
            .expression_attribute_values(":job", AttributeValue::S(job.to_string()))
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

        // Keys are made a batch at a time, so a large file's keys are never all in memory.
        let mut claims = Vec::new();
        for batch in logins.chunks(MAX_BATCH_GET) {
            let batch = batch
                .iter()
                .map(|k| items::key(keys::login_claim_pk(tenant, k.as_ref()), keys::CLAIM_SK))
                .collect();
            claims.extend(self.batch_get(batch).await?);
        }
        for batch in emails.chunks(MAX_BATCH_GET) {
            let batch = batch
                .iter()
                .map(|k| items::key(keys::email_claim_pk(tenant, k.as_ref()), keys::CLAIM_SK))
                .collect();
            claims.extend(self.batch_get(batch).await?);
        }
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
        for batch in login_owners.chunks(MAX_BATCH_GET) {
            let batch = batch
                .iter()
                .map(|u| items::key(keys::user_pk(tenant, u), keys::USER_SK))
                .collect();
            for item in self.batch_get(batch).await? {
                if let Some(user) = items::user_from_item(item)? {
                    users.insert(user.profile.login_id.key().into_owned(), Box::new(user));
                }
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

    /// Writes one chunk of a job's plan with its journal entry (`chunks_done` k → k + 1), the
    /// check that the job still holds the lock, and the tenant's counters moved by the whole
    /// chunk: one transaction. `at` stamps the changes (the job's apply time).
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id, chunk = job.journal.chunks_done))]
    pub async fn apply_import_chunk(
        &self,
        job: &mut ImportJob,
        chunk: &[Planned],
        cap: SeatCap,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = Transaction::new(&self.table);
        let mut delta = TenantDelta::default();
        for change in chunk {
            let d = match change {
                Planned::Create { user, .. } => {
                    tx.create_user(user)?;
                    TenantDelta::between(None, Some(user))
                }
                Planned::Update { before, after, .. } => {
                    let mut after = (**after).clone();
                    after.version = before.version + 1;
                    after.touch(at);
                    tx.update_user(before, &after)?;
                    TenantDelta::between(Some(before), Some(&after))
                }
                Planned::Delete { user, .. } => {
                    tx.delete_user(user, at)?;
                    TenantDelta::between(Some(user), None)
                }
            };
            delta.admins += d.admins;
            delta.active += d.active;
            delta.active_or_invited += d.active_or_invited;
        }
        let mut next = job.journal;
        next.chunks_done += 1;
        self.journal_and_lock(&mut tx, job, "journal.chunks_done", next.chunks_done, at)?;
        tx.update(import_counters(&job.tenant, delta, cap), Guard::SeatLimit)?;
        tx.commit(&self.client).await?;
        job.journal = next;
        job.version += 1;
        job.updated_at = at;
        Ok(())
    }

    /// Writes one chunk of the invitations of the users a job created, with its journal entry
    /// (`invitation_chunks_done` k → k + 1) and the lock check: the stream hands them to the
    /// sender once they are in the table.
    #[instrument(skip_all, fields(tenant_id = %job.tenant, import_id = %job.id, chunk = job.journal.invitation_chunks_done))]
    pub async fn release_import_invitations(
        &self,
        job: &mut ImportJob,
        invitations: &[Invitation],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = Transaction::new(&self.table);
        for invitation in invitations {
            tx.put_invitation(invitation)?;
        }
        let mut next = job.journal;
        next.invitation_chunks_done += 1;
        self.journal_and_lock(
            &mut tx,
            job,
            "journal.invitation_chunks_done",
            next.invitation_chunks_done,
            at,
        )?;
        tx.commit(&self.client).await?;
        job.journal = next;
        job.version += 1;
        job.updated_at = at;
        Ok(())
    }

    /// Adds the journal step (`field` to `value`, the job at the version read) and the check
    /// that the job holds the tenant's lock with a live lease (an expired lease may have let
    /// an API write in).
    fn journal_and_lock(
        &self,
        tx: &mut Transaction,
        job: &ImportJob,
        field: &str,
        value: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        tx.update(
            Update::builder()
                .set_key(Some(items::key(
                    keys::tenant_pk(&job.tenant),
                    &job_sk(&job.id),
                )))
                .update_expression(format!(
                    "SET {field} = :step, version = :next, updated_at = :at"
                ))
                .condition_expression("version = :v")
                .expression_attribute_values(":step", num(value))
                .expression_attribute_values(":next", num(job.version + 1))
                .expression_attribute_values(":v", num(job.version))
                .expression_attribute_values(
                    ":at",
                    AttributeValue::S(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ),
            Guard::ImportJournal,
        )?;
        let check = ConditionCheck::builder()
            .table_name(&*self.table)
            .set_key(Some(items::key(
                keys::tenant_pk(&job.tenant),
                keys::IMPORT_LOCK_SK,
            )))
            .condition_expression("job_id = :job AND lease_expires_at >= :now")
            .expression_attribute_values(":job", AttributeValue::S(job.id.to_string()))
            .expression_attribute_values(":now", num(self.clock.now().timestamp_millis()))
            .build()
            .map_err(StoreError::build)?;
        tx.condition_check(check, Guard::ImportLockHeld);
        Ok(())
    }
}

/// The tenant update of one chunk: every counter moved by the chunk's total, the tenant must
/// exist, at least one active admin must remain, and, when the chunk takes seats and the tenant
/// had a limit, the counter its policy limits must leave room for all of them (the lock keeps
/// API writes out; this also stops an invitation accepted meanwhile from being overbooked).
fn import_counters(tenant: &TenantId, delta: TenantDelta, cap: SeatCap) -> UpdateBuilder {
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
    if delta.admins < 0 {
        // Admins after the chunk = active_admins + delta >= 1.
        conditions.push("active_admins >= :min_admins".into());
        update = update.expression_attribute_values(":min_admins", num(1 - delta.admins));
    }
    let (counter, taken) = if cap.policy.count_invited {
        ("users_active_or_invited", delta.active_or_invited)
    } else {
        ("users_active", delta.active)
    };
    if let (Some(limit), true) = (cap.limit, taken > 0) {
        // Seats after the chunk = counter + taken <= limit. (Every tenant item has its
        // counters, and a condition can't use if_not_exists.)
        conditions.push(format!("{counter} <= :seat_cap"));
        update = update.expression_attribute_values(":seat_cap", num(i64::from(limit) - taken));
    }
    update
        .update_expression(format!("SET {}", sets.join(", ")))
        .condition_expression(conditions.join(" AND "))
}
