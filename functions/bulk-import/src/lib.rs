//! The bulk-import function: SQS delivers S3 `ObjectCreated` notifications of uploads to
//! `imports/{tid}/{jid}.csv` (and the API's requests to apply a validated job). For each, it
//! reads the file, checks every row against the directory, writes the validation report, and
//! only then, if every row is valid and the job says `apply`, writes the rows in journalled
//! chunks under the tenant's import lock, releases the invitations of the users it created,
//! and writes the result report.
//!
//! Every step can be cut short (a crash, a timeout, an injected failure) and the message comes
//! back after the visibility timeout: the journal in the job says where to resume, and the plan
//! written before the first change says what to write, so the end state is that of an
//! uninterrupted run.

mod config;
pub mod reports;

use std::collections::HashMap;
#[cfg(feature = "failpoints")]
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use rollcall::domain::{
    BillingPolicy, ImportId, Invitation, InvitationId, InvitationTrigger, Status, TenantId, User,
    UserId,
};
use rollcall::files::{Bucket, FileError, FileErrorKind};
use rollcall::import::{
    ApplyRequest, Creating, DerivedIds, FileProblem, ImportJob, ImportMode, ImportStatus, JobError,
    Journal, Planned, Report, RowAction, check, parse_file, parse_upload_key,
};
use rollcall::store::{
    INVITATIONS_PER_CHUNK, PlanChunks, PlanReader, SeatCap, Store, StoreError, chunk_ranges,
    encode_plan,
};
use serde::Deserialize;
use tracing::{info, instrument, warn};

pub use config::{
    DEFAULT_LOCK_LEASE, DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, ImportConfig, MAX_ROWS_CEILING,
};
use reports::{ReportedProblem, RowKeys};

/// The SQS event, as Lambda's event source mapping delivers it, and the partial batch response.
pub use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// An S3 event notification (S3's own shape, which moto also sends), or S3's test message.
/// Written here rather than taken from `aws_lambda_events::s3`: that crate's record requires
/// `userIdentity`, `requestParameters` and `responseElements`, which the body moto sends lacks
/// (real S3 sends them; this reads only what both send).
#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct S3Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
struct S3Object {
    key: String,
    #[serde(rename = "eTag", default)]
    e_tag: Option<String>,
}

/// A stage of an apply where a failure can be injected (see [`Failpoints`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The plan is saved and the job says `applying`; nothing is written yet.
    BeforeFirstWrite,
    /// The first chunk of rows is committed, the others are not.
    MidApply,
    /// Every row is written; the invitations are not released and the job is not finished.
    BeforeCommit,
    /// The job is `applied`; the tenant's lock is still held.
    BeforeLockRelease,
}

/// Failures to inject at apply stages: the real code path asks at each stage whether to stop
/// there, as a crash or a timeout would stop it. Empty (nothing injected) unless a test arms it.
/// Compiled in only with the `failpoints` feature, which the end-to-end tests turn on: the
/// functions deployed to Lambda carry no such switch, and each stage's question is a no-op.
#[derive(Debug, Clone, Default)]
pub struct Failpoints(#[cfg(feature = "failpoints")] Arc<Mutex<HashMap<Stage, u32>>>);

impl Failpoints {
    /// Makes the next `times` passes through `stage` fail.
    #[cfg(feature = "failpoints")]
    pub fn arm(&self, stage: Stage, times: u32) {
        if let Ok(mut armed) = self.0.lock() {
            armed.insert(stage, times);
        }
    }

    #[cfg(feature = "failpoints")]
    fn check(&self, stage: Stage) -> Result<(), ImportError> {
        let Ok(mut armed) = self.0.lock() else {
            return Ok(());
        };
        match armed.get_mut(&stage) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(ImportError::Injected(stage))
            }
            _ => Ok(()),
        }
    }

    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    fn check(&self, _stage: Stage) -> Result<(), ImportError> {
        Ok(())
    }
}

/// Why a message was not handled to the end.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The message can never be handled (not a job's upload, an unknown job, a tenant
    /// mismatch): it is logged and dropped.
    #[error("refused: {0}")]
    Refused(String),
    /// Another job of the tenant holds the lock: try again later.
    #[error("another import of the tenant is in progress")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// S3 failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// A report could not be written as JSON.
    #[error("writing a report: {0}")]
    Report(#[from] serde_json::Error),
    /// A failure injected at a stage.
    #[error("failure injected at {0:?}")]
    Injected(Stage),
}

impl ImportError {
    /// Whether the message should come back (after the queue's visibility timeout) because a
    /// later delivery may get further: throttling and service failures, a lock another job
    /// holds, another delivery writing the same job, a crash. Anything else fails the job at
    /// once rather than after every redelivery.
    pub fn is_retryable(&self) -> bool {
        match self {
            ImportError::Busy | ImportError::Injected(_) => true,
            ImportError::Store(StoreError::VersionConflict | StoreError::ImportLockLost) => true,
            ImportError::Store(e) => e.is_retryable(),
            ImportError::File(e) => e.is_retryable(),
            ImportError::Refused(_) | ImportError::Report(_) => false,
        }
    }

    /// What the job says when this error ends it: a stable code and a message for the API.
    fn job_error(&self, writing: bool) -> JobError {
        let (stays_ja, stays_en) = if writing {
            (
                "書き込み済みの変更は残っています。",
                "The changes written so far stay.",
            )
        } else {
            ("何も変更されていません。", "Nothing was changed.")
        };
        let (code, ja, en) = match self {
            ImportError::File(e) if e.kind == FileErrorKind::NotFound => (
                "file_missing",
                format!("ファイル（{}）が見つかりません。", e.key),
                format!("The file ({}) is not there.", e.key),
            ),
            ImportError::File(e) => {
                let why = e.code.as_deref().unwrap_or("refused");
                (
                    "file_unreadable",
                    format!("S3 が {} を拒否しました（{why}）。", e.operation),
                    format!("S3 refused {} ({why}).", e.operation),
                )
            }
            ImportError::Store(StoreError::Corrupt(_)) => (
                "job_data_corrupt",
                "ジョブのデータ（計画または検証レポート）が壊れています。".to_owned(),
                "The job's data (its plan or its validation report) is corrupt.".to_owned(),
            ),
            ImportError::Store(e) => (
                "store_refused",
                format!("データベースが処理を拒否しました（{e}）。"),
                format!("The database refused the job ({e})."),
            ),
            ImportError::Report(_) => (
                "report_failed",
                "レポートを作成できませんでした。".to_owned(),
                "The report could not be written.".to_owned(),
            ),
            ImportError::Refused(_) | ImportError::Busy | ImportError::Injected(_) => (
                "import_failed",
                "インポートを完了できませんでした。".to_owned(),
                "The import could not be completed.".to_owned(),
            ),
        };
        JobError {
            code: code.into(),
            line: None,
            byte_offset: None,
            message_ja: format!("{ja}{stays_ja}もう一度インポートしてください。"),
            message_en: format!("{en} {stays_en} Import the file again."),
        }
    }
}

/// The importer: the store, the bucket, the limits and the failpoints.
#[derive(Debug, Clone)]
pub struct Importer {
    store: Store,
    bucket: Bucket,
    config: ImportConfig,
    failpoints: Failpoints,
}

/// The user a change creates who gets an invitation (not one created suspended), with the line.
fn invited(change: &Planned) -> Option<(usize, &User)> {
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
fn order_for_apply(changes: &mut [Planned], policy: BillingPolicy) {
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
    /// An importer over `store` and `bucket`.
    pub fn new(store: Store, bucket: Bucket, config: ImportConfig) -> Importer {
        Importer {
            store,
            bucket,
            config,
            failpoints: Failpoints::default(),
        }
    }

    /// The failpoints this importer consults.
    pub fn failpoints(&self) -> &Failpoints {
        &self.failpoints
    }

    /// Handles a batch: each message that should come back (a failure worth retrying) is
    /// named in the response; refused messages are logged and dropped.
    pub async fn function_handler(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let mut response = SqsBatchResponse::default();
        for message in event.payload.records {
            let id = message.message_id.unwrap_or_default();
            let body = message.body.unwrap_or_default();
            match Box::pin(self.handle_message(&body)).await {
                Ok(()) => {}
                Err(ImportError::Refused(reason)) => {
                    warn!(message_id = %id, %reason, "message refused and dropped");
                }
                Err(e) => {
                    warn!(message_id = %id, error = %e, "message will be delivered again");
                    response.add_failure(id);
                }
            }
        }
        Ok(response)
    }

    /// Handles one message body.
    pub async fn handle_message(&self, body: &str) -> Result<(), ImportError> {
        if let Ok(request) = serde_json::from_str::<ApplyRequest>(body) {
            return self
                .run(&request.apply.tenant, &request.apply.job, None)
                .await;
        }
        let notification: Notification = serde_json::from_str(body)
            .map_err(|e| ImportError::Refused(format!("not an S3 notification: {e}")))?;
        if notification.event.as_deref() == Some("s3:TestEvent") {
            info!("S3 test event ignored");
            return Ok(());
        }
        for record in notification.records {
            if !record.event_name.starts_with("ObjectCreated") {
                info!(event = %record.event_name, "not an upload; ignored");
                continue;
            }
            if record.s3.bucket.name != self.bucket.name() {
                return Err(ImportError::Refused(format!(
                    "an upload to bucket {}, not {}",
                    record.s3.bucket.name,
                    self.bucket.name()
                )));
            }
            let key = decode_key(&record.s3.object.key).map_err(|e| {
                ImportError::Refused(format!("the key {:?} {e}", record.s3.object.key))
            })?;
            let (tenant, job) = parse_upload_key(&key)
                .ok_or_else(|| ImportError::Refused(format!("{key} is not an import upload")))?;
            self.run(&tenant, &job, record.s3.object.e_tag.as_deref())
                .await?;
        }
        Ok(())
    }

    /// Runs a job as far as it can go.
    #[instrument(skip_all, fields(tenant_id = %tenant, import_id = %id))]
    async fn run(
        &self,
        tenant: &TenantId,
        id: &ImportId,
        etag: Option<&str>,
    ) -> Result<(), ImportError> {
        let mut job = match self.store.get_import(tenant, id).await {
            Ok(job) => job,
            Err(StoreError::NotFound) => {
                return Err(ImportError::Refused(format!(
                    "no import job {id} in tenant {tenant}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let read = job.etag.as_deref().map(unquote);
        if let (Some(delivered), Some(read)) = (etag.map(unquote), read)
            && delivered != read
            && job.status != ImportStatus::Waiting
        {
            // The file was uploaded again after the job read it: the job stays with the file
            // it read (a new file needs a new job).
            return Err(ImportError::Refused(format!(
                "upload {delivered} of job {id} is not the one it read ({read})"
            )));
        }
        let result = match job.status {
            ImportStatus::Waiting | ImportStatus::Validating => self.validate(&mut job).await,
            ImportStatus::Applying => self.resume(&mut job).await,
            status => {
                // A repeated delivery of a finished job: only make sure the lock is free.
                info!(
                    status = status.as_str(),
                    "job already finished; delivery ignored"
                );
                self.store.release_import_lock(tenant, id).await?;
                Ok(())
            }
        };
        match result {
            Err(e) if !e.is_retryable() && !matches!(e, ImportError::Refused(_)) => {
                self.fail(tenant, id, &e).await
            }
            other => other,
        }
    }

    /// Ends a job that met an error no redelivery can get past: the job says `failed` with a
    /// code and a message at once (not after the queue's last redelivery), its lock is freed,
    /// and the message is acknowledged.
    async fn fail(
        &self,
        tenant: &TenantId,
        id: &ImportId,
        e: &ImportError,
    ) -> Result<(), ImportError> {
        let cause = std::error::Error::source(e).map(ToString::to_string);
        warn!(error = %e, cause, "the import met an error no redelivery can get past");
        let mut job = self.store.get_import(tenant, id).await?;
        if !matches!(
            job.status,
            ImportStatus::Waiting | ImportStatus::Validating | ImportStatus::Applying
        ) {
            return Ok(());
        }
        let error = e.job_error(job.status == ImportStatus::Applying);
        // The template's ImportJobFailures metric counts this line.
        tracing::error!(code = %error.code, "import job failed");
        job.error = Some(error);
        job.status = ImportStatus::Failed;
        job.finished_at = Some(self.store.clock().now());
        match self.store.save_import(&mut job).await {
            // Another delivery moved the job on meanwhile: it decides.
            Err(StoreError::VersionConflict) => return Ok(()),
            saved => saved?,
        }
        self.store.release_import_lock(tenant, id).await?;
        Ok(())
    }

    /// Reads and checks the file, writes the validation report, and applies if asked to and
    /// every row is valid.
    async fn validate(&self, job: &mut ImportJob) -> Result<(), ImportError> {
        let key = job.upload_key();
        let head = self
            .bucket
            .client()
            .head_object()
            .bucket(self.bucket.name())
            .key(&key)
            .send()
            .await;
        let head = match head {
            Ok(head) => head,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                if job.status == ImportStatus::Waiting && job.etag.is_none() {
                    return Err(ImportError::Refused(format!(
                        "job {} has no upload yet",
                        job.id
                    )));
                }
                // It was read before (an apply asked for later): the bucket's lifecycle removed it.
                let problem = ReportedProblem {
                    line: None,
                    byte_offset: None,
                    column: None,
                    code: "file_missing".into(),
                    message_ja: "アップロードされたファイルが保存期間を過ぎて削除されました。もう一度アップロードしてください。".into(),
                    message_en: "The uploaded file was removed after its retention period; upload it again.".into(),
                };
                return self.refuse_file(job, problem).await;
            }
            Err(e) => return Err(FileError::from_sdk("HeadObject", &key, e).into()),
        };
        if let (Some(read), Some(now)) = (job.etag.as_deref(), head.e_tag.as_deref())
            && unquote(read) != unquote(now)
        {
            // Validated as one file, asked to apply another (the upload link was used twice).
            let problem = ReportedProblem {
                line: None,
                byte_offset: None,
                column: None,
                code: "file_changed".into(),
                message_ja: "検証した後でファイルが置き換えられました。新しいインポートとしてアップロードしてください。".into(),
                message_en: "The file was replaced after it was validated; upload it as a new import.".into(),
            };
            return self.refuse_file(job, problem).await;
        }
        let apply = job.mode == ImportMode::Apply;
        if apply {
            match self
                .store
                .acquire_import_lock(&job.tenant, &job.id, self.config.lock_lease)
                .await
            {
                Ok(()) => {}
                Err(StoreError::ImportInProgress) => return Err(ImportError::Busy),
                Err(e) => return Err(e.into()),
            }
        }
        job.status = ImportStatus::Validating;
        job.etag = head.e_tag.clone();
        job.error = None;
        match self.store.save_import(job).await {
            Ok(()) => {}
            Err(StoreError::VersionConflict) => {
                // Another delivery of the same upload got here first and carries on.
                info!("another delivery is handling the job");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }

        let size = u64::try_from(head.content_length.unwrap_or(0)).unwrap_or(0);
        if size > self.config.max_bytes {
            let problem = ReportedProblem::of_file(&FileProblem::TooLarge {
                limit: self.config.max_bytes,
            });
            return self.refuse_file(job, problem).await;
        }
        let bytes = self.bucket.get(&key).await?;
        // The job's time: when its users are created, and part of their ids.
        let at = self.store.clock().now();
        let job_id = job.id;
        let user_ids = DerivedIds::new(&job_id, at, "user");
        let creating = Creating {
            tenant: &job.tenant,
            at,
            ids: &|line| UserId::from_ulid(user_ids.of_line(line)),
        };
        let mut file = match parse_file(&bytes, job.encoding, self.config.max_rows, creating) {
            Ok(file) => file,
            Err(problem) => {
                return self
                    .refuse_file(job, ReportedProblem::of_file(&problem))
                    .await;
            }
        };
        drop(bytes);

        let mut logins = Vec::with_capacity(file.rows.len());
        let mut emails = Vec::new();
        for row in &file.rows {
            if let Some((login, action)) = &row.action {
                logins.push(login.key());
                if let RowAction::New(user) = action {
                    emails.push(user.email.key());
                }
            }
        }
        // A login id freed by a DELETE row may be named again by a NEW row below it; a batch
        // read must not ask for a key twice.
        logins.sort_unstable();
        logins.dedup();
        let mut directory = self
            .store
            .import_directory(&job.tenant, &logins, &emails)
            .await?;
        drop((logins, emails));

        if let Some(problem) = self.uploader_problem(job).await? {
            return self.refuse_file(job, problem).await;
        }

        let checked = check(&mut file, &mut directory, Some(&job.created_by));
        let header = &file.header;
        let (plan, mut problems) = match checked {
            Ok(plan) => (Some(plan), Vec::new()),
            Err(problems) => (None, problems),
        };
        let counts = plan.as_ref().map(|p| p.counts);
        // An apply keeps the plan compressed (a few MB for 100,000 users) rather than as users
        // (about 500 bytes each), before the reports need memory of their own.
        let planned = match plan {
            Some(mut plan) if apply => {
                order_for_apply(&mut plan.changes, directory.tenant.billing);
                let journal = Journal {
                    chunks: chunk_ranges(&plan.changes).len() as u32,
                    chunks_done: 0,
                    invitation_chunks: plan
                        .changes
                        .iter()
                        .filter_map(invited)
                        .count()
                        .div_ceil(INVITATIONS_PER_CHUNK)
                        as u32,
                    invitation_chunks_done: 0,
                };
                Some((encode_plan(&plan.changes)?, journal))
            }
            _ => None,
        };
        drop(directory);
        problems.sort_by_key(|p| p.line);
        let reported: Vec<ReportedProblem> = problems
            .iter()
            .map(|p| ReportedProblem::of_row(p, Some(header)))
            .collect();
        let report = reports::validation(job, file.encoding, &file.rows, &reported, counts)?;
        drop(reported);
        self.write_reports(job, Report::Validation, report).await?;

        let mut invalid_lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        invalid_lines.dedup();
        job.file_encoding = Some(file.encoding);
        job.rows = Some(file.rows.len() as u64);
        job.rows_invalid = Some(invalid_lines.len() as u64);
        job.problems = Some(problems.len() as u64);
        job.counts = counts;

        if counts.is_none() {
            return self.finish(job, ImportStatus::Invalid).await;
        }
        let Some((plan, journal)) = planned else {
            return self.finish(job, ImportStatus::Validated).await;
        };
        let rows: RowKeys = file
            .rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.operation.map_or("", |o| o.as_str()).to_owned(),
                    r.login_text.as_str().to_owned(),
                )
            })
            .collect();
        drop(file);

        self.bucket
            .put(&job.plan_key(), "application/gzip", plan.clone())
            .await?;
        job.status = ImportStatus::Applying;
        job.applied_at = Some(at);
        job.journal = journal;
        self.store.save_import(job).await?;
        self.failpoints.check(Stage::BeforeFirstWrite)?;
        self.apply(job, &plan, rows).await
    }

    /// The uploader must be an active admin when the file is read (the API checked it when
    /// the job was created; they may have been suspended, demoted or deleted since).
    async fn uploader_problem(
        &self,
        job: &ImportJob,
    ) -> Result<Option<ReportedProblem>, ImportError> {
        let admin = match self.store.get_user(&job.tenant, &job.created_by).await {
            Ok(u) => u.is_active_admin(),
            Err(StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        };
        Ok((!admin).then(|| ReportedProblem {
            line: None,
            byte_offset: None,
            column: None,
            code: "uploader_not_admin".into(),
            message_ja: "インポートを作成したユーザーが、現在は有効な管理者ではありません（停止中、招待中、権限の変更、または削除）。有効な管理者がインポートし直してください。".into(),
            message_en: "The user who created the import is not an active admin now (suspended, still invited, no longer an admin, or deleted). An active admin must import the file again.".into(),
        }))
    }

    /// Carries on an apply that a crash or a timeout cut short: the plan and the rows of the
    /// validation report are read back, and the journal says which chunks are written.
    async fn resume(&self, job: &mut ImportJob) -> Result<(), ImportError> {
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
    async fn apply(
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
    async fn apply_failed(&self, job: &mut ImportJob, e: StoreError) -> Result<(), ImportError> {
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

    /// Ends a job that changes nothing: the status, and the lock freed (only a job that
    /// applies takes it).
    async fn finish(&self, job: &mut ImportJob, status: ImportStatus) -> Result<(), ImportError> {
        job.status = status;
        job.finished_at = Some(self.store.clock().now());
        self.store.save_import(job).await?;
        if job.mode == ImportMode::Apply {
            self.store.release_import_lock(&job.tenant, &job.id).await?;
        }
        info!(
            status = status.as_str(),
            problems = job.problems,
            "import checked"
        );
        Ok(())
    }

    /// Refuses the file as a whole: the report says why, the job is invalid.
    async fn refuse_file(
        &self,
        job: &mut ImportJob,
        problem: ReportedProblem,
    ) -> Result<(), ImportError> {
        let report = reports::file_refused(job, &problem)?;
        self.write_reports(job, Report::Validation, report).await?;
        job.error = Some(problem.job_error());
        job.problems = Some(1);
        self.finish(job, ImportStatus::Invalid).await
    }

    /// Writes a report: CSV for people, JSON for programs.
    async fn write_reports(
        &self,
        job: &ImportJob,
        report: Report,
        (csv, json): (String, Vec<u8>),
    ) -> Result<(), ImportError> {
        self.bucket
            .put(
                &job.report_key(report, "csv"),
                "text/csv; charset=utf-8",
                csv.into_bytes(),
            )
            .await?;
        self.bucket
            .put(&job.report_key(report, "json"), "application/json", json)
            .await?;
        Ok(())
    }

    /// Removes the plan (it holds copies of users) once the job is over; the bucket's
    /// lifecycle removes it anyway if this fails.
    async fn cleanup(&self, job: &ImportJob) {
        if let Err(e) = self.bucket.delete(&job.plan_key()).await {
            warn!(error = %e, "could not remove the job's plan");
        }
    }
}

/// An ETag without the quotes HeadObject puts around it (S3 events send it bare).
fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Decodes an S3 event key, which S3 sends form-URL-encoded: `+` is a space and `%XX` a byte.
/// Bytes that are not UTF-8 are an error, never replaced with U+FFFD (a key decoded wrongly
/// would name another object).
pub fn decode_key(key: &str) -> Result<String, std::str::Utf8Error> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(
            decode_key("imports/acme/a+b%2Bc%E6%97%A5.csv").unwrap(),
            "imports/acme/a b+c日.csv"
        );
        assert_eq!(decode_key("100%").unwrap(), "100%");
        assert_eq!(decode_key("%zz").unwrap(), "%zz");
    }

    #[test]
    fn a_key_whose_bytes_are_not_utf8_is_an_error() {
        assert!(decode_key("imports/acme/%FF%FE.csv").is_err());
        assert!(decode_key("imports/acme/%E6%97.csv").is_err());
    }
}
