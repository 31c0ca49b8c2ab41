//! Writing a checked file: the plan's chunks in order under the tenant's lock, each with its
//! journal entry, then the invitations of the users it created, then the result report. A
//! delivery cut short anywhere resumes from the journal.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rollcall::domain::{
    BillingPolicy, Invitation, InvitationId, InvitationTrigger, Status, User, UserId,
};
use rollcall::import::{
    DerivedIds, INVITATIONS_PER_CHUNK, ImportJob, ImportStatus, JobError, PlanChunks, PlanReader,
    Planned, Report,
};
use rollcall::store::{SeatCap, Store, StoreError};
use tracing::info;

use crate::reports::{self, RowKeys};
use crate::{ImportError, Importer, Stage};

/// The user a change creates who gets an invitation (not one created suspended), with the line.
pub(crate) fn invited(change: &Planned) -> Option<(usize, &User)> {
    match change {
        Planned::Create { line, user } if user.status == Status::Invited => Some((*line, user)),
        _ => None,
    }
}

/// The invitation of a user a job created, with an id derived from the job and the line.
fn invitation(
    job: &ImportJob,
    ids: &DerivedIds,
    line: usize,
    user: &User,
    at: DateTime<Utc>,
) -> Invitation {
    let mut invitation =
        Invitation::new(user, InvitationTrigger::Created, Some(job.created_by), at);
    invitation.id = InvitationId::from_ulid(ids.of_line(line));
    invitation
}

/// Orders changes for writing: rows that free seats first, then the others in file order, so
/// no chunk needs a seat that a later chunk frees.
pub(crate) fn order_for_apply(changes: &mut [Planned], policy: BillingPolicy) {
    changes.sort_by_key(|c| {
        let (before, after) = match c {
            Planned::Create { user, .. } => (None, Some(&**user)),
            Planned::Update { before, after, .. } => (Some(&**before), Some(&**after)),
            Planned::Delete { user, .. } => (Some(&**user), None),
        };
        let seat = |u: Option<&User>| i8::from(u.is_some_and(|u| policy.holds_seat(u.status)));
        seat(after) - seat(before)
    });
}

/// Renews the tenant lock's lease while a job writes: at the first beat, then whenever a
/// quarter of the lease has passed since the last renewal, by the store's clock (the same
/// clock the lease is written and checked with, so tests move it instead of waiting).
struct Heartbeat {
    lease: std::time::Duration,
    last: Option<DateTime<Utc>>,
}

impl Heartbeat {
    fn new(lease: std::time::Duration) -> Heartbeat {
        Heartbeat { lease, last: None }
    }

    async fn beat(&mut self, store: &Store, job: &ImportJob) -> Result<(), StoreError> {
        let now = store.clock().now();
        let quarter = chrono::Duration::from_std(self.lease / 4).unwrap_or(chrono::Duration::MAX);
        if self.last.is_some_and(|t| now - t < quarter) {
            return Ok(());
        }
        store
            .renew_import_lock(&job.tenant, &job.id, self.lease)
            .await?;
        self.last = Some(now);
        Ok(())
    }
}

impl Importer {
    /// Carries on an apply that a crash or a timeout cut short: the plan and the rows of the
    /// validation report are read back, and the journal says which chunks are written.
    pub(crate) async fn resume(&self, job: &mut ImportJob) -> Result<(), ImportError> {
        match self
            .store
            .acquire_import_lock(&job.tenant, &job.id, self.config.lock_lease)
            .await
        {
            Ok(()) => {}
            Err(StoreError::ImportInProgress) => {
                // The lease ran out and another job took the lock: this one can't finish.
                job.error = Some(JobError {
                    code: "import_lock_lost".into(),
                    line: None,
                    byte_offset: None,
                    message_ja: "処理が中断している間に、別のインポートが始まりました。途中までの変更が残っています。結果を確認してください。".into(),
                    message_en: "Another import started while this one was interrupted; the rows written so far stay. Check the result.".into(),
                });
                job.status = ImportStatus::Failed;
                job.finished_at = Some(self.store.clock().now());
                self.store.save_import(job).await?;
                // The template's ImportJobFailures metric counts this line.
                tracing::error!(code = "import_lock_lost", "import job failed");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        info!(journal = ?job.journal, "resuming the apply");
        let plan = self.bucket.get(&job.plan_key()).await?;
        let validation = job.report_key(Report::Validation, "json");
        let rows = reports::rows_of_validation(&self.bucket.get(&validation).await?)
            .map_err(|e| StoreError::Corrupt(format!("the job's validation report: {e}")))?;
        self.apply(job, &plan, rows).await
    }

    /// Writes the chunks the journal has not, releases the invitations, writes the result
    /// report, finishes the job and frees the lock. The plan is read from its compressed form
    /// a chunk at a time, once for the rows and once for the invitations and the outcomes.
    pub(crate) async fn apply(
        &self,
        job: &mut ImportJob,
        plan: &[u8],
        rows: RowKeys,
    ) -> Result<(), ImportError> {
        let (Some(at), Some(counts)) = (job.applied_at, job.counts) else {
            return Err(
                StoreError::Corrupt("an applying job without its time or counts".into()).into(),
            );
        };
        let (tenant, _) = self.store.tenant_and_seats(&job.tenant).await?;
        let cap = SeatCap {
            limit: tenant.seat_limit,
            policy: tenant.billing,
        };
        let mut heartbeat = Heartbeat::new(self.config.lock_lease);
        let written = job.journal.chunks_done as usize;
        for chunk in PlanChunks::new(PlanReader::new(plan)).skip(written) {
            let chunk = chunk?;
            heartbeat.beat(&self.store, job).await?;
            if let Err(e) = self.store.apply_import_chunk(job, &chunk, cap, at).await {
                return self.apply_failed(job, e).await;
            }
            if job.journal.chunks_done == 1 && job.journal.chunks > 1 {
                self.failpoints.check(Stage::MidApply)?;
            }
        }
        self.failpoints.check(Stage::BeforeCommit)?;

        // Built a chunk at a time: a large job's invitations are never all in memory.
        let mut done: HashMap<usize, (&'static str, UserId)> = HashMap::with_capacity(rows.len());
        let mut invitations: Vec<Invitation> = Vec::with_capacity(INVITATIONS_PER_CHUNK);
        let (mut invited_users, mut chunk_index) = (0, 0);
        let mut changes = PlanReader::new(plan).peekable();
        let invitation_ids = DerivedIds::new(&job.id, at, "invite");
        while let Some(change) = changes.next() {
            let change = change?;
            let (line, result, id) = reports::outcome_of(&change);
            done.insert(line, (result, id));
            if let Some((line, user)) = invited(&change) {
                invitations.push(invitation(job, &invitation_ids, line, user, at));
            }
            let full = invitations.len() == INVITATIONS_PER_CHUNK;
            if full || (changes.peek().is_none() && !invitations.is_empty()) {
                invited_users += invitations.len();
                if chunk_index >= job.journal.invitation_chunks_done as usize {
                    heartbeat.beat(&self.store, job).await?;
                    if let Err(e) = self
                        .store
                        .release_import_invitations(job, &invitations, at)
                        .await
                    {
                        return self.apply_failed(job, e).await;
                    }
                }
                chunk_index += 1;
                invitations.clear();
            }
        }

        let outcomes = reports::outcomes(&rows, &done);
        drop((rows, done));
        job.status = ImportStatus::Applied;
        let report = reports::result(job, counts, invited_users, &outcomes)?;
        drop(outcomes);
        self.write_reports(job, Report::Result, report).await?;
        job.finished_at = Some(self.store.clock().now());
        self.store.save_import(job).await?;
        info!(
            created = counts.created,
            updated = counts.updated,
            deleted = counts.deleted,
            unchanged = counts.unchanged,
            invitations = invited_users,
            "import applied"
        );
        self.failpoints.check(Stage::BeforeLockRelease)?;
        self.store.release_import_lock(&job.tenant, &job.id).await?;
        self.cleanup(job).await;
        Ok(())
    }

    /// A chunk the store refused for good: the job fails and says so; worth-retrying errors go
    /// back to the queue.
    pub(crate) async fn apply_failed(
        &self,
        job: &mut ImportJob,
        e: StoreError,
    ) -> Result<(), ImportError> {
        if e.is_retryable() {
            return Err(e.into());
        }
        if matches!(e, StoreError::VersionConflict | StoreError::ImportLockLost) {
            // The journal moved (another delivery is writing the same job), or the lease ran
            // out: the redelivered message resumes, taking the lock again if nobody else has.
            return Err(e.into());
        }
        tracing::error!(error = %e, journal = ?job.journal, "import apply refused by the store");
        let fresh = self.store.get_import(&job.tenant, &job.id).await?;
        *job = fresh;
        job.error = Some(JobError {
            code: "apply_failed".into(),
            line: None,
            byte_offset: None,
            message_ja: format!(
                "変更の書き込みが途中で拒否されました（{e}）。書き込み済みの変更は残っています。"
            ),
            message_en: format!(
                "Writing the changes was refused part-way ({e}); the changes written so far stay."
            ),
        });
        job.status = ImportStatus::Failed;
        job.finished_at = Some(self.store.clock().now());
        self.store.save_import(job).await?;
        // The template's ImportJobFailures metric counts this line.
        tracing::error!(code = "apply_failed", "import job failed");
        self.store.release_import_lock(&job.tenant, &job.id).await?;
        Ok(())
    }
}
