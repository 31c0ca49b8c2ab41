//! Writing a checked file: the plan's chunks under the tenant's lock, many in flight at once,
//! each with its own journal entry; then the invitations of the users it created, likewise;
//! then the result report. A delivery cut short anywhere resumes from the journal.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt as _};
use rollcall::domain::{Invitation, InvitationId, InvitationTrigger, Status, User, UserId};
use rollcall::import::{
    Chunk, DerivedIds, INVITATIONS_PER_CHUNK, ImportJob, ImportStatus, JobError, PlanChunks,
    PlanReader, Planned, Report,
};
use rollcall::retry::Backoff;
use rollcall::store::{Store, StoreError, Written};
use tracing::{info, warn};

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

/// The invitations of the users a plan creates, in chunks of one transaction each, read from
/// the plan a change at a time (a large job's invitations are never all in memory).
fn invitation_chunks<'p>(
    plan: &'p [u8],
    job: &'p ImportJob,
    at: DateTime<Utc>,
) -> impl Iterator<Item = Result<InvitationChunk, ImportError>> + 'p {
    let ids = DerivedIds::new(&job.id, at, "invite");
    let mut changes = PlanReader::new(plan);
    let mut index = 0;
    std::iter::from_fn(move || {
        let mut invitations = Vec::with_capacity(INVITATIONS_PER_CHUNK);
        for change in changes.by_ref() {
            let change = match change {
                Ok(change) => change,
                Err(e) => return Some(Err(e.into())),
            };
            if let Some((line, user)) = invited(&change) {
                invitations.push(invitation(job, &ids, line, user, at));
                if invitations.len() == INVITATIONS_PER_CHUNK {
                    break;
                }
            }
        }
        if invitations.is_empty() {
            return None;
        }
        index += 1;
        Some(Ok(InvitationChunk {
            index: index - 1,
            invitations,
        }))
    })
}

/// One transaction's worth of invitations.
struct InvitationChunk {
    index: u32,
    invitations: Vec<Invitation>,
}

/// A chunk of rows or of invitations, as the writer schedules it.
trait Piece {
    /// Its journal number.
    fn index(&self) -> u32;
    /// Earlier chunks of the same kind that must be committed first.
    fn waits_for(&self) -> &[u32];
    /// Rows (or invitations) in it.
    fn rows(&self) -> u64;
}

impl Piece for Chunk {
    fn index(&self) -> u32 {
        self.index
    }
    fn waits_for(&self) -> &[u32] {
        &self.waits_for
    }
    fn rows(&self) -> u64 {
        self.changes.len() as u64
    }
}

impl Piece for InvitationChunk {
    fn index(&self) -> u32 {
        self.index
    }
    fn waits_for(&self) -> &[u32] {
        &[]
    }
    fn rows(&self) -> u64 {
        self.invitations.len() as u64
    }
}

/// Which of a job's two kinds of chunks is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Rows,
    Invitations,
}

/// Renews the tenant lock's lease while a job writes, between chunks: at the first beat, then
/// whenever a quarter of the lease has passed since the last renewal, by the store's clock
/// (the same clock the lease is written and checked with, so tests move it instead of
/// waiting). Each renewal is fenced by the token of this delivery's holding: once another
/// delivery takes the lock over, this one stops at its next beat.
struct Heartbeat {
    lease: std::time::Duration,
    fence: u64,
    last: Option<DateTime<Utc>>,
}

impl Heartbeat {
    fn new(lease: std::time::Duration, fence: u64) -> Heartbeat {
        Heartbeat {
            lease,
            fence,
            last: None,
        }
    }

    async fn beat(&mut self, store: &Store, job: &ImportJob) -> Result<(), StoreError> {
        let now = store.clock().now();
        let quarter = chrono::Duration::from_std(self.lease / 4).unwrap_or(chrono::Duration::MAX);
        if self.last.is_some_and(|t| now - t < quarter) {
            return Ok(());
        }
        store
            .renew_import_lock(&job.tenant, &job.id, self.fence, self.lease)
            .await?;
        self.last = Some(now);
        Ok(())
    }
}

/// How many chunks may be in flight: the configured most at first; halved when a chunk fails
/// in a way worth retrying (throttling above all), and grown back by one for every `limit`
/// chunks committed after (additive increase, multiplicative decrease).
struct Pace {
    most: usize,
    limit: usize,
    committed: usize,
}

impl Pace {
    fn new(most: usize) -> Pace {
        let most = most.max(1);
        Pace {
            most,
            limit: most,
            committed: 0,
        }
    }

    fn committed(&mut self) {
        self.committed += 1;
        if self.committed >= self.limit {
            self.committed = 0;
            self.limit = (self.limit + 1).min(self.most);
        }
    }

    fn throttled(&mut self) {
        self.limit = (self.limit / 2).max(1);
        self.committed = 0;
    }
}

/// Retries of one chunk that failed in a way worth retrying, backing off from 100 ms; then the
/// message comes back and a later delivery resumes.
const CHUNK_RETRIES: Backoff = Backoff::new(std::time::Duration::from_millis(100), 6);

/// The least time between two progress writes onto the job.
const PROGRESS_EVERY: chrono::Duration = chrono::Duration::seconds(1);

impl Importer {
    /// Carries on an apply that a crash or a timeout cut short: the plan and the rows of the
    /// validation report are read back, and the journal says which chunks are written.
    pub(crate) async fn resume(&self, job: &mut ImportJob) -> Result<(), ImportError> {
        let fence = match self
            .store
            .acquire_import_lock(&job.tenant, &job.id, self.config.lock_lease)
            .await
        {
            Ok(fence) => fence,
            Err(StoreError::ImportInProgress) => {
                // The lease ran out and another job took the lock: this one can't finish.
                return self
                    .end_applying(
                        job,
                        "import_lock_lost",
                        "処理が中断している間に、別のインポートが始まりました。途中までの変更が残っています。結果を確認してください。".into(),
                        "Another import started while this one was interrupted; the rows written so far stay. Check the result.".into(),
                    )
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        if job.reserved.is_none() {
            // It began applying under a version whose chunks moved the job's own journal and
            // the counters one after another: its written chunks can't be told from the
            // journal entries this version reads, so it ends here, with the counters as
            // exact as that version left them.
            return self
                .end_applying(
                    job,
                    "import_interrupted_by_upgrade",
                    "更新の前に始まったインポートが中断していたため、続きを書き込めません。途中までの変更が残っています。結果を確認して、残りをもう一度インポートしてください。".into(),
                    "This import began before an upgrade and was interrupted; it can't be carried on. The rows written so far stay: check them and import the rest again.".into(),
                )
                .await;
        }
        info!(journal = ?job.journal, "resuming the apply");
        let plan = self.bucket.get(&job.plan_key()).await?;
        let validation = job.report_key(Report::Validation, "json");
        let rows = reports::rows_of_validation(&self.bucket.get(&validation).await?)
            .map_err(|e| StoreError::Corrupt(format!("the job's validation report: {e}")))?;
        self.apply(job, &plan, rows, fence).await
    }

    /// Writes the chunks the journal lacks, releases the invitations, writes the result
    /// report, finishes the job and frees the lock. The plan is read from its compressed form
    /// a chunk at a time: once for the rows, once for the invitations, once for the outcomes.
    pub(crate) async fn apply(
        &self,
        job: &mut ImportJob,
        plan: &[u8],
        rows: RowKeys,
        fence: u64,
    ) -> Result<(), ImportError> {
        let (Some(at), Some(counts)) = (job.applied_at, job.counts) else {
            return Err(
                StoreError::Corrupt("an applying job without its time or counts".into()).into(),
            );
        };
        let journal = self.store.import_journal(job).await?;
        journal.fill(&mut job.journal);
        let mut heartbeat = Heartbeat::new(self.config.lock_lease, fence);

        let frozen = job.clone();
        let store = &self.store;
        let done: HashSet<u32> = journal.rows_done.iter().copied().collect();
        let chunks = PlanChunks::new(PlanReader::new(plan)).map(|c| c.map_err(Into::into));
        let written = self
            .write_all(job, &mut heartbeat, Phase::Rows, chunks, &done, |chunk| {
                let frozen = &frozen;
                async move {
                    let result = store.apply_import_chunk(frozen, &chunk, at, fence).await;
                    (chunk, result)
                }
            })
            .await;
        if let Err(e) = written {
            return self.apply_failed(job, e).await;
        }
        self.failpoints.check(Stage::BeforeCommit)?;

        let done: HashSet<u32> = journal.invitations_done.iter().copied().collect();
        let chunks = invitation_chunks(plan, &frozen, at);
        let released = self
            .write_all(
                job,
                &mut heartbeat,
                Phase::Invitations,
                chunks,
                &done,
                |chunk| {
                    let frozen = &frozen;
                    async move {
                        let result = store
                            .release_import_invitations(
                                frozen,
                                chunk.index,
                                &chunk.invitations,
                                fence,
                            )
                            .await;
                        (chunk, result)
                    }
                },
            )
            .await;
        if let Err(e) = released {
            return self.apply_failed(job, e).await;
        }

        let mut outcomes: HashMap<usize, (&'static str, UserId)> =
            HashMap::with_capacity(rows.len());
        let mut invited_users = 0;
        for change in PlanReader::new(plan) {
            let change = change?;
            let (line, result, id) = reports::outcome_of(&change);
            outcomes.insert(line, (result, id));
            invited_users += usize::from(invited(&change).is_some());
        }
        let outcomes = reports::outcomes(&rows, &outcomes);
        drop(rows);
        job.status = ImportStatus::Applied;
        job.journal.rows_per_second = None;
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

    /// Writes `pieces` (skipping those in `done`) with `write`, up to the pace's limit in
    /// flight, each only once the earlier pieces it waits for are committed; the lease is
    /// renewed between pieces, and the job's progress written every second or so. A piece
    /// that fails in a way worth retrying slows the pace and is tried again after a back-off;
    /// one the store refuses for good stops the writing: the pieces in flight are let finish
    /// (their journal entries count) and the refusal is returned.
    async fn write_all<P, W, F>(
        &self,
        job: &mut ImportJob,
        heartbeat: &mut Heartbeat,
        phase: Phase,
        pieces: impl Iterator<Item = Result<P, ImportError>>,
        done: &HashSet<u32>,
        write: W,
    ) -> Result<(), ImportError>
    where
        P: Piece,
        W: Fn(P) -> F,
        F: Future<Output = (P, Result<Written, StoreError>)>,
    {
        let mut pace = Pace::new(self.config.concurrency);
        let mut committed: HashSet<u32> = done.clone();
        let mut retries: HashMap<u32, Backoff> = HashMap::new();
        let mut flight = FuturesUnordered::new();
        let mut waiting: Option<P> = None;
        let mut pieces = pieces.fuse();
        let began = self.store.clock().now();
        let mut rows_now: u64 = 0;
        let mut reported = began;
        let mut written_now = 0;
        loop {
            while flight.len() < pace.limit {
                let piece = match waiting.take() {
                    Some(piece) => piece,
                    None => match pieces.next() {
                        Some(piece) => piece?,
                        None => break,
                    },
                };
                if done.contains(&piece.index()) {
                    continue;
                }
                if !piece.waits_for().iter().all(|w| committed.contains(w)) {
                    waiting = Some(piece);
                    break;
                }
                heartbeat.beat(&self.store, job).await?;
                flight.push(futures::future::Either::Left(write(piece)));
            }
            let Some((piece, result)) = flight.next().await else {
                if let Some(piece) = waiting {
                    return Err(StoreError::Corrupt(format!(
                        "chunk {} waits for a chunk that is not written",
                        piece.index()
                    ))
                    .into());
                }
                break;
            };
            match result {
                Ok(written) => {
                    committed.insert(piece.index());
                    pace.committed();
                    if let Written::Now { rows } = written {
                        rows_now += rows;
                        written_now += 1;
                    }
                    match phase {
                        Phase::Rows => {
                            job.journal.chunks_done += 1;
                            job.journal.applied_rows += piece.rows();
                            if written_now == 1 && job.journal.chunks > 1 {
                                self.failpoints.check(Stage::MidApply)?;
                            }
                        }
                        Phase::Invitations => job.journal.invitation_chunks_done += 1,
                    }
                }
                Err(e) if e.is_retryable() => {
                    let index = piece.index();
                    let delay = retries
                        .entry(index)
                        .or_insert(CHUNK_RETRIES)
                        .next_delay()
                        .ok_or(e)?;
                    pace.throttled();
                    warn!(chunk = index, ?phase, limit = pace.limit, "chunk retried");
                    let again = write(piece);
                    flight.push(futures::future::Either::Right(async move {
                        tokio::time::sleep(delay).await;
                        again.await
                    }));
                }
                Err(e) => {
                    // The chunks in flight finish; their journal entries say what they wrote.
                    while flight.next().await.is_some() {}
                    return Err(e.into());
                }
            }
            let now = self.store.clock().now();
            if now - reported >= PROGRESS_EVERY {
                reported = now;
                let seconds = (now - began).num_milliseconds().max(1) as f64 / 1000.0;
                job.journal.rows_per_second = (phase == Phase::Rows)
                    .then(|| (rows_now as f64 / seconds).round() as u32)
                    .or(job.journal.rows_per_second);
                self.store.record_import_progress(job).await?;
            }
        }
        Ok(())
    }

    /// A chunk the store refused for good: the job fails, says so, and gives back what its
    /// unwritten chunks had reserved; worth-retrying errors go back to the queue.
    pub(crate) async fn apply_failed(
        &self,
        job: &mut ImportJob,
        e: ImportError,
    ) -> Result<(), ImportError> {
        let e = match e {
            ImportError::Store(e)
                if !e.is_retryable()
                    && !matches!(e, StoreError::VersionConflict | StoreError::ImportLockLost) =>
            {
                e
            }
            // The job was taken over (the lease ran out), or a later delivery may get further:
            // the redelivered message resumes, taking the lock again if nobody else has.
            other => return Err(other),
        };
        tracing::error!(error = %e, journal = ?job.journal, "import apply refused by the store");
        self.end_applying(
            job,
            "apply_failed",
            format!(
                "変更の書き込みが途中で拒否されました（{e}）。書き込み済みの変更は残っています。"
            ),
            format!(
                "Writing the changes was refused part-way ({e}); the changes written so far stay."
            ),
        )
        .await
    }

    /// Ends an applying job as failed with `code` and its messages: what its unwritten chunks
    /// reserved is given back with the status (`Store::fail_applying_import`), and the lock is
    /// released if this job still holds it.
    async fn end_applying(
        &self,
        job: &mut ImportJob,
        code: &str,
        message_ja: String,
        message_en: String,
    ) -> Result<(), ImportError> {
        job.error = Some(JobError {
            code: code.into(),
            line: None,
            byte_offset: None,
            message_ja,
            message_en,
        });
        self.store.fail_applying_import(job).await?;
        // The template's ImportJobFailures metric counts this line.
        tracing::error!(code, "import job failed");
        self.store.release_import_lock(&job.tenant, &job.id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_halves_on_throttling_and_grows_back_by_one_per_round() {
        let mut pace = Pace::new(16);
        assert_eq!(pace.limit, 16);
        pace.throttled();
        pace.throttled();
        assert_eq!(pace.limit, 4);
        for _ in 0..4 {
            pace.committed();
        }
        assert_eq!(pace.limit, 5, "one more after a round of 4");
        for _ in 0..200 {
            pace.committed();
        }
        assert_eq!(pace.limit, 16, "never above the configured most");
        for _ in 0..10 {
            pace.throttled();
        }
        assert_eq!(pace.limit, 1, "never below one");
        assert_eq!(Pace::new(0).limit, 1);
    }
}
