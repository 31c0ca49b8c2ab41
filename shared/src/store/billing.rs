//! Billing reads and writes: the tenants to visit, each tenant's users with their state
//! history (the living and the deleted), and the write-once month snapshots.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::{Store, StoreError, condition_held, items, keys, schema};
use crate::domain::{
    BillingMonth, BillingPolicy, DisplayName, Email, LoginId, StateChange, Tenant, TenantId,
    TimeZone, UserId,
};

/// A tenant's month as billed: written once, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingSnapshot {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The month billed.
    pub month: BillingMonth,
    /// The time zone whose month end was used.
    pub time_zone: TimeZone,
    /// The instant the users were counted at: the last millisecond of the month.
    pub counted_at: DateTime<Utc>,
    /// The number of billable users at `counted_at`.
    pub count: u64,
    /// Whether invited users were counted (the tenant's policy when the snapshot was taken).
    pub count_invited: bool,
    /// SHA-256 (hex) of the counted user ids, sorted, one per line: two runs that counted the
    /// same users agree on it.
    pub users_sha256: String,
    /// The S3 key of the list of counted users.
    pub users_key: String,
    /// When the snapshot was computed.
    pub computed_at: DateTime<Utc>,
}

/// What happened to a snapshot put with [`Store::put_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotWrite {
    /// This write created it.
    Written,
    /// It existed already (as returned); nothing was changed.
    Existing(BillingSnapshot),
}

/// A user as billing sees them: who they are and their state history.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BillingMember {
    /// The user's id.
    pub user_id: UserId,
    /// Login id (as now, or when deleted).
    pub login_id: LoginId,
    /// Name (as now, or when deleted).
    pub name: DisplayName,
    /// Email (as now, or when deleted).
    pub email: Email,
    /// The state history, oldest first.
    pub history: Vec<StateChange>,
}

/// Partitions of the by-created index read at once (a tenant's users are in 33 of them, its
/// tombstones in 33 more).
const PARTITIONS_IN_FLIGHT: usize = 8;

/// A tenant's users, living and deleted, and what reading them cost.
#[derive(Debug, Clone, Default)]
pub struct Members {
    /// Every user the tenant has or had (within tombstone retention), by id.
    pub members: Vec<BillingMember>,
    /// Items DynamoDB returned (one per user).
    pub items_read: u64,
    /// Query requests sent.
    pub requests: u64,
}

#[derive(Serialize, Deserialize)]
struct SnapshotItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    snapshot: BillingSnapshot,
}

fn snapshot_sk(month: BillingMonth) -> String {
    format!("BILLING#{month}")
}

impl Store {
    /// Every tenant, from the sparse tenants index (no table scan).
    #[instrument(skip_all)]
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(schema::TENANTS.name)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", schema::TENANTS.pk)
            .expression_attribute_values(":pk", AttributeValue::S(keys::TENANTS_PARTITION.into()));
        let mut tenants = Vec::new();
        self.query_all(query, |item| {
            tenants.push(items::tenant_from_item(item)?.0);
            Ok(())
        })
        .await?;
        Ok(tenants)
    }

    /// Every user of the tenant, deleted ones included (until their tombstone expires), read
    /// from the by-created index with only the attributes billing needs: one item per user.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn billing_members(&self, tenant: &TenantId) -> Result<Members, StoreError> {
        let mut found = Members::default();
        let partitions = keys::live_users_partitions(tenant)
            .into_iter()
            .chain(keys::deleted_users_partitions(tenant));
        self.read_members(partitions, &mut found).await?;
        found.members.sort_by_key(|m| m.user_id);
        Ok(found)
    }

    /// The tenant's live users (no tombstones), as [`Store::billing_members`] reads them: what
    /// billing needs to count at the present instant.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn live_members(&self, tenant: &TenantId) -> Result<Members, StoreError> {
        let mut found = Members::default();
        self.read_members(keys::live_users_partitions(tenant), &mut found)
            .await?;
        found.members.sort_by_key(|m| m.user_id);
        Ok(found)
    }

    /// Reads the members in `partitions` of the by-created index, a few partitions at a time.
    async fn read_members(
        &self,
        partitions: impl IntoIterator<Item = String>,
        found: &mut Members,
    ) -> Result<(), StoreError> {
        use futures::stream::{self, StreamExt as _, TryStreamExt as _};
        let read: Vec<Members> = stream::iter(partitions)
            .map(|partition| async move {
                let mut part = Members::default();
                self.read_partition(partition, &mut part).await?;
                Ok::<_, StoreError>(part)
            })
            .buffer_unordered(PARTITIONS_IN_FLIGHT)
            .try_collect()
            .await?;
        for part in read {
            found.requests += part.requests;
            found.items_read += part.items_read;
            found.members.extend(part.members);
        }
        Ok(())
    }

    async fn read_partition(
        &self,
        partition: String,
        found: &mut Members,
    ) -> Result<(), StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(schema::BY_CREATED.name)
            .key_condition_expression("#pk = :pk")
            .projection_expression("user_id, login_id, #name, email, history")
            .expression_attribute_names("#pk", schema::BY_CREATED.pk)
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":pk", AttributeValue::S(partition));
        found.requests += self
            .query_all(query, |item| {
                let member: BillingMember = serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Corrupt(format!("billing member: {e}")))?;
                found.items_read += 1;
                found.members.push(member);
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Writes a snapshot unless one exists for its tenant and month; never overwrites.
    #[instrument(skip_all, fields(tenant_id = %snapshot.tenant_id, month = %snapshot.month))]
    pub async fn put_snapshot(
        &self,
        snapshot: &BillingSnapshot,
    ) -> Result<SnapshotWrite, StoreError> {
        let item = SnapshotItem {
            pk: keys::tenant_pk(&snapshot.tenant_id),
            sk: snapshot_sk(snapshot.month),
            entity: "billing_snapshot".into(),
            snapshot: snapshot.clone(),
        };
        let item = serde_dynamo::to_item(item)
            .map_err(|e| StoreError::Corrupt(format!("snapshot item: {e}")))?;
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if condition_held(result)? {
            return Ok(SnapshotWrite::Written);
        }
        let existing = self
            .snapshot(&snapshot.tenant_id, snapshot.month)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a snapshot vanished".into()))?;
        Ok(SnapshotWrite::Existing(existing))
    }

    /// The tenant's snapshot of `month`, if taken.
    pub async fn snapshot(
        &self,
        tenant: &TenantId,
        month: BillingMonth,
    ) -> Result<Option<BillingSnapshot>, StoreError> {
        self.read_item(keys::tenant_pk(tenant), &snapshot_sk(month))
            .await?
            .map(snapshot_from_item)
            .transpose()
    }

    /// The tenant's snapshots from `from` to `to` (both included), oldest first.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn snapshots(
        &self,
        tenant: &TenantId,
        from: BillingMonth,
        to: BillingMonth,
    ) -> Result<Vec<BillingSnapshot>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", AttributeValue::S(keys::tenant_pk(tenant)))
            .expression_attribute_values(":from", AttributeValue::S(snapshot_sk(from)))
            .expression_attribute_values(":to", AttributeValue::S(snapshot_sk(to)));
        let mut found = Vec::new();
        self.query_all(query, |item| {
            found.push(snapshot_from_item(item)?);
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// Sets a tenant's seat limit (`None`: unlimited) and billing policy. Users who hold
    /// seats keep them when the limit is lowered below the seats in use; only new seats are
    /// refused.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn set_billing_settings(
        &self,
        tenant: &TenantId,
        seat_limit: Option<u32>,
        policy: BillingPolicy,
    ) -> Result<(), StoreError> {
        let policy = serde_dynamo::to_attribute_value(policy)
            .map_err(|e| StoreError::Corrupt(format!("billing policy: {e}")))?;
        let req = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(keys::tenant_pk(tenant), keys::TENANT_SK)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":policy", policy);
        let req = match seat_limit {
            Some(limit) => req
                .update_expression("SET billing = :policy, seat_limit = :limit")
                .expression_attribute_values(":limit", AttributeValue::N(limit.to_string())),
            None => req.update_expression("SET billing = :policy REMOVE seat_limit"),
        };
        if condition_held(req.send().await)? {
            Ok(())
        } else {
            Err(StoreError::TenantNotFound)
        }
    }
}

fn snapshot_from_item(item: items::Item) -> Result<BillingSnapshot, StoreError> {
    let item: SnapshotItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Corrupt(format!("snapshot item: {e}")))?;
    Ok(item.snapshot)
}
