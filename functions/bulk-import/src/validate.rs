//! Reading and checking a file: the upload is looked at (size, ETag), read, checked row by
//! row against the directory, and reported on before anything changes; an apply job then
//! saves its plan and hands over to [`crate::apply`].

use rollcall::domain::UserId;
use rollcall::files::FileError;
use rollcall::import::{
    Creating, DerivedIds, FileProblem, INVITATIONS_PER_CHUNK, ImportJob, ImportMode, ImportStatus,
    Journal, Report, RowAction, check, chunk_ranges, encode_plan, parse_file,
};
use rollcall::store::{SeatCap, StoreError, TenantDelta};
use tracing::info;

use crate::apply::invited;
use crate::notification::unquote;
use crate::reports::{self, ReportedProblem, RowKeys};
use crate::{ImportError, Importer, Stage};

impl Importer {
    /// Reads and checks the file, writes the validation report, and applies if asked to and
    /// every row is valid.
    pub(crate) async fn validate(&self, job: &mut ImportJob) -> Result<(), ImportError> {
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
        let mut fence = 0;
        if apply {
            match self
                .store
                .acquire_import_lock(&job.tenant, &job.id, self.config.lock_lease)
                .await
            {
                Ok(held) => fence = held,
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
                    emails.push(user.profile.email.key());
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
            Some(plan) if apply => {
                let journal = Journal {
                    chunks: chunk_ranges(&plan.changes).len() as u32,
                    invitation_chunks: plan
                        .changes
                        .iter()
                        .filter_map(invited)
                        .count()
                        .div_ceil(INVITATIONS_PER_CHUNK)
                        as u32,
                    ..Journal::default()
                };
                let mut delta = TenantDelta::default();
                for change in &plan.changes {
                    delta += TenantDelta::of_change(change);
                }
                let cap = SeatCap {
                    limit: directory.tenant.seat_limit,
                    policy: directory.tenant.billing,
                };
                Some((encode_plan(&plan.changes)?, journal, delta, cap))
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
        let Some((plan, journal, delta, cap)) = planned else {
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
        job.applied_at = Some(at);
        job.journal = journal;
        // The job becomes `applying` with the whole plan's seats and counters reserved: if a
        // seat went meanwhile (an invitation accepted), it fails here with nothing written.
        self.store.begin_import_apply(job, delta, cap).await?;
        self.failpoints.check(Stage::BeforeFirstWrite)?;
        self.apply(job, &plan, rows, fence).await
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

    /// Refuses the file as a whole: the report says why, the job is invalid.
    pub(crate) async fn refuse_file(
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
    pub(crate) async fn write_reports(
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
}
