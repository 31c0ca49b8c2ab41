//! billing-snapshot: fired by EventBridge Scheduler around each month end (Asia/Tokyo), it takes
//! every tenant's snapshot of the month that just closed in the tenant's billing time zone: the
//! number of users billable at the month's last millisecond, computed from each user's state
//! history, so a late, repeated or concurrent run counts exactly the same users.
//!
//! Per tenant, one run:
//! 1. reads every user the tenant has or had (the deleted ones are tombstones) with their history:
//!    one item per user, no per-user reads;
//! 2. counts those billable at the instant ([`billable_at`]);
//! 3. writes the list of counted users to `billing/{tid}/{yyyy-mm}.csv`;
//! 4. writes `BILLING#{yyyy-mm}` on condition that it does not exist. If it does (a concurrent
//!    or earlier run), the two are compared: a different set of users is logged as an error for
//!    operators and nothing is overwritten.
//!
//! The list is written before the snapshot, so a snapshot always has its list. A run killed
//! half-way leaves whole tenants done or not started; the next run does the rest.

pub mod config;

use chrono::{DateTime, Duration, Utc};
use futures::{FutureExt, StreamExt};
use lambda_runtime::LambdaEvent;
use rollcall::csv::CsvWriter;
use rollcall::digest::sha256_hex;
use rollcall::domain::{BillingMonth, Tenant, TenantId, UserState, billable_at, state_at};
use rollcall::files::Bucket;
use rollcall::store::{BillingMember, BillingSnapshot, SnapshotWrite, Store, StoreError};
use serde::{Deserialize, Serialize};

pub use config::SnapshotConfig;

/// How long after a month end its snapshot may be taken: a write stamped before the end is
/// committed, and in the index billing reads, well within this.
pub const SETTLE: Duration = Duration::minutes(2);

/// What a run should do. The schedule sends `{}`: every tenant, each for its last closed
/// month, skipping snapshots already taken. Naming a month or tenants re-drives: the snapshot
/// is computed even if it exists, and compared with the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// The month to bill (`yyyy-mm`); default: each tenant's last closed month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<BillingMonth>,
    /// The tenants to bill; default: every tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantId>,
}

impl SnapshotRequest {
    /// Whether this is a re-drive (something named) rather than the schedule's run.
    pub fn is_redrive(&self) -> bool {
        self.month.is_some() || !self.tenants.is_empty()
    }
}

/// How one tenant's snapshot went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// This run took the snapshot.
    Written,
    /// A snapshot existed; the scheduled run left it alone without recounting.
    Existing,
    /// A snapshot existed and this run counted the same users.
    Verified,
    /// A snapshot existed and this run counted different users: kept, and logged as an error.
    Mismatch,
    /// The month has not ended (and settled) in the tenant's time zone.
    NotClosed,
    /// No such tenant.
    UnknownTenant,
    /// Reading or writing failed; a retry may succeed.
    Failed,
}

impl Outcome {
    /// The outcome's name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::Existing => "existing",
            Outcome::Verified => "verified",
            Outcome::Mismatch => "mismatch",
            Outcome::NotClosed => "not_closed",
            Outcome::UnknownTenant => "unknown_tenant",
            Outcome::Failed => "failed",
        }
    }
}

/// One tenant's part of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRun {
    /// The tenant.
    pub tenant: TenantId,
    /// The month billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<BillingMonth>,
    /// What happened.
    pub outcome: Outcome,
    /// The stored snapshot's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// This run's count, when it differs from the stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<u64>,
    /// The S3 key of the list of counted users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_key: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TenantRun {
    fn new(tenant: &TenantId, month: Option<BillingMonth>, outcome: Outcome) -> TenantRun {
        TenantRun {
            tenant: tenant.clone(),
            month,
            outcome,
            count: None,
            computed: None,
            users_key: None,
            error: None,
        }
    }

    /// A run that found (or wrote) `snapshot`.
    fn of(snapshot: &BillingSnapshot, outcome: Outcome) -> TenantRun {
        TenantRun {
            count: Some(snapshot.count),
            users_key: Some(snapshot.users_key.clone()),
            ..TenantRun::new(&snapshot.tenant_id, Some(snapshot.month), outcome)
        }
    }

    fn failed(tenant: &TenantId, month: Option<BillingMonth>, e: &dyn std::fmt::Display) -> Self {
        TenantRun {
            error: Some(e.to_string()),
            ..TenantRun::new(tenant, month, Outcome::Failed)
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// One entry per tenant, by tenant id.
    pub runs: Vec<TenantRun>,
    /// User items read (one per user of the tenants counted).
    pub items_read: u64,
    /// Query requests sent to read them.
    pub queries: u64,
}

impl RunReport {
    /// Tenants whose snapshot failed and may succeed on a retry.
    pub fn failed(&self) -> impl Iterator<Item = &TenantRun> {
        self.runs.iter().filter(|r| r.outcome == Outcome::Failed)
    }
}

/// A run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The tenants could not be listed.
    #[error("listing tenants failed: {0}")]
    Tenants(#[from] StoreError),
    /// Some tenants failed; the others are done and a retry skips them.
    #[error("{failed} of {total} tenant snapshots failed (first: {first}); a retry does the rest")]
    Incomplete {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
        /// The first failure.
        first: String,
    },
}

impl From<RunError> for lambda_runtime::Diagnostic {
    fn from(e: RunError) -> Self {
        let error_type = match e {
            RunError::Tenants(_) => "BillingTenantsUnreadable",
            RunError::Incomplete { .. } => "BillingRunIncomplete",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// The S3 key of a tenant's list of counted users for `month`.
pub fn users_key(tenant: &TenantId, month: BillingMonth) -> String {
    format!("billing/{tenant}/{month}.csv")
}

/// The billing-snapshot handler and what it needs.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    store: Store,
    bucket: Bucket,
    config: SnapshotConfig,
}

/// What counting one tenant found.
struct Count<'a> {
    counted: Vec<(&'a BillingMember, UserState)>,
    sha256: String,
}

impl Snapshotter {
    /// A snapshotter writing snapshots through `store` and lists to `bucket`.
    pub fn new(store: Store, bucket: Bucket, config: SnapshotConfig) -> Self {
        Snapshotter {
            store,
            bucket,
            config,
        }
    }

    /// The Lambda entry point: runs the request and fails (so Scheduler retries) if any tenant
    /// failed in a way a retry may fix.
    pub async fn function_handler(
        &self,
        event: LambdaEvent<SnapshotRequest>,
    ) -> Result<RunReport, RunError> {
        // Boxed, so the runtime's future does not nest the whole run's type (whose depth
        // otherwise exceeds the compiler's layout limit in the binary).
        let report = Box::pin(self.run(&event.payload)).await?;
        let failed: Vec<_> = report.failed().collect();
        if let Some(first) = failed.first() {
            return Err(RunError::Incomplete {
                failed: failed.len(),
                total: report.runs.len(),
                first: format!(
                    "{}: {}",
                    first.tenant,
                    first.error.as_deref().unwrap_or("unknown")
                ),
            });
        }
        Ok(report)
    }

    /// Takes the snapshots the request asks for, at most `config.concurrency` tenants at a time.
    pub async fn run(&self, request: &SnapshotRequest) -> Result<RunReport, RunError> {
        let now = self.store.clock().now();
        let targets = self.targets(request).await?;
        let redrive = request.is_redrive();
        let mut report = RunReport::default();
        let mut runs = futures::stream::iter(targets)
            .map(|target| {
                // Boxed: each tenant's future is large (SDK calls within calls); boxed, the
                // stream holds pointers and the run's type stays shallow.
                async move {
                    match target {
                        Ok(tenant) => self.tenant_run(&tenant, request.month, redrive, now).await,
                        Err(id) => (
                            TenantRun::new(&id, request.month, Outcome::UnknownTenant),
                            (0, 0),
                        ),
                    }
                }
                .boxed()
            })
            .buffer_unordered(self.config.concurrency);
        while let Some((run, (items, queries))) = runs.next().await {
            report.items_read += items;
            report.queries += queries;
            report.runs.push(run);
        }
        report.runs.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        tracing::info!(
            tenants = report.runs.len(),
            written = count(&report, Outcome::Written),
            existing = count(&report, Outcome::Existing) + count(&report, Outcome::Verified),
            mismatched = count(&report, Outcome::Mismatch),
            failed = count(&report, Outcome::Failed),
            items_read = report.items_read,
            "billing run finished"
        );
        Ok(report)
    }

    /// The tenants to visit: those named (`Err` for unknown ids), else every tenant.
    async fn targets(
        &self,
        request: &SnapshotRequest,
    ) -> Result<Vec<Result<Tenant, TenantId>>, StoreError> {
        if request.tenants.is_empty() {
            let all = self.store.tenants().await?;
            return Ok(all.into_iter().map(Ok).collect());
        }
        let mut found = Vec::new();
        for id in &request.tenants {
            match self.store.get_tenant(id).await {
                Ok(t) => found.push(Ok(t)),
                Err(StoreError::TenantNotFound) => {
                    tracing::warn!(tenant_id = %id, "billing run names an unknown tenant");
                    found.push(Err(id.clone()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// One tenant's snapshot, and the items and queries it read.
    async fn tenant_run(
        &self,
        tenant: &Tenant,
        month: Option<BillingMonth>,
        redrive: bool,
        now: DateTime<Utc>,
    ) -> (TenantRun, (u64, u64)) {
        let tz = tenant.billing_time_zone;
        let month = month.unwrap_or_else(|| BillingMonth::last_closed(now - SETTLE, tz));
        if month.end(tz) + SETTLE > now {
            return (
                TenantRun::new(&tenant.id, Some(month), Outcome::NotClosed),
                (0, 0),
            );
        }
        match self.snapshot_tenant(tenant, month, redrive, now).await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(tenant_id = %tenant.id, %month, error = %e, "billing snapshot failed");
                (TenantRun::failed(&tenant.id, Some(month), &e), (0, 0))
            }
        }
    }

    async fn snapshot_tenant(
        &self,
        tenant: &Tenant,
        month: BillingMonth,
        redrive: bool,
        now: DateTime<Utc>,
    ) -> Result<(TenantRun, (u64, u64)), anyhow::Error> {
        let stored = self.store.snapshot(&tenant.id, month).await?;
        if let (Some(stored), false) = (&stored, redrive) {
            return Ok((TenantRun::of(stored, Outcome::Existing), (0, 0)));
        }
        let tz = tenant.billing_time_zone;
        let at = month.billing_instant(tz);
        let members = self.store.billing_members(&tenant.id).await?;
        let cost = (members.items_read, members.requests);
        let count = count_billable(&members.members, tenant, at);
        let snapshot = BillingSnapshot {
            tenant_id: tenant.id.clone(),
            month,
            time_zone: tz,
            counted_at: at,
            count: count.counted.len() as u64,
            count_invited: tenant.billing.count_invited,
            users_sha256: count.sha256.clone(),
            users_key: users_key(&tenant.id, month),
            computed_at: now,
        };
        let existing = match stored {
            Some(stored) => stored,
            None => {
                // The list first: a snapshot that exists always has its list.
                self.put_users_list(tenant, &snapshot, &count).await?;
                match self.store.put_snapshot(&snapshot).await? {
                    SnapshotWrite::Written => {
                        tracing::info!(tenant_id = %tenant.id, %month, count = snapshot.count, "billing snapshot taken");
                        return Ok((TenantRun::of(&snapshot, Outcome::Written), cost));
                    }
                    SnapshotWrite::Existing(existing) => existing,
                }
            }
        };
        Ok((compare(&existing, &snapshot), cost))
    }

    async fn put_users_list(
        &self,
        tenant: &Tenant,
        snapshot: &BillingSnapshot,
        count: &Count<'_>,
    ) -> Result<(), anyhow::Error> {
        let tz = tenant.billing_time_zone;
        let local = |t: Option<DateTime<Utc>>| t.map(|t| tz.rfc3339(t)).unwrap_or_default();
        let mut csv = CsvWriter::new();
        csv.row([
            "user_id",
            "login_id",
            "name",
            "email",
            "state",
            "valid_from",
            "valid_till",
        ]);
        for (m, state) in &count.counted {
            let entry = state_at(&m.history, snapshot.counted_at);
            csv.row([
                m.user_id.to_string(),
                m.login_id.to_string(),
                m.name.to_string(),
                m.email.to_string(),
                state.as_str().to_owned(),
                local(entry.and_then(|e| e.valid_from)),
                local(entry.and_then(|e| e.valid_till)),
            ]);
        }
        self.bucket
            .put(
                &snapshot.users_key,
                "text/csv; charset=utf-8",
                csv.finish().into_bytes(),
            )
            .await?;
        Ok(())
    }
}

/// The members billable at `at` under the tenant's policy, with their state then, and the
/// digest of their ids.
fn count_billable<'a>(
    members: &'a [BillingMember],
    tenant: &Tenant,
    at: DateTime<Utc>,
) -> Count<'a> {
    let counted: Vec<_> = members
        .iter()
        .filter(|m| billable_at(&m.history, at, tenant.billing))
        .filter_map(|m| state_at(&m.history, at).map(|e| (m, e.state)))
        .collect();
    let mut ids = String::with_capacity(counted.len() * 27);
    for (m, _) in &counted {
        ids.push_str(&m.user_id.to_string());
        ids.push('\n');
    }
    Count {
        counted,
        sha256: sha256_hex(ids.as_bytes()),
    }
}

/// Compares a stored snapshot with a recomputed one; a difference is an operator's problem.
fn compare(stored: &BillingSnapshot, computed: &BillingSnapshot) -> TenantRun {
    let mut run = TenantRun::of(stored, Outcome::Verified);
    if stored.users_sha256 != computed.users_sha256 || stored.count != computed.count {
        tracing::error!(
            alert = "billing_snapshot_mismatch",
            tenant_id = %stored.tenant_id,
            month = %stored.month,
            stored = stored.count,
            computed = computed.count,
            "a re-run counted different users than the stored billing snapshot; the stored one is kept"
        );
        run.outcome = Outcome::Mismatch;
        run.computed = Some(computed.count);
    }
    run
}

fn count(report: &RunReport, outcome: Outcome) -> usize {
    report.runs.iter().filter(|r| r.outcome == outcome).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_are_the_report_json_names() {
        for o in [
            Outcome::Written,
            Outcome::Existing,
            Outcome::Verified,
            Outcome::Mismatch,
            Outcome::NotClosed,
            Outcome::UnknownTenant,
            Outcome::Failed,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
