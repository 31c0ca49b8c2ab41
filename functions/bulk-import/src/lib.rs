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

mod apply;
mod config;
mod error;
mod failpoints;
mod notification;
pub mod reports;
mod validate;

use lambda_runtime::LambdaEvent;
use rollcall::domain::{ImportId, TenantId};
use rollcall::files::Bucket;
use rollcall::import::{ApplyRequest, ImportJob, ImportMode, ImportStatus, parse_upload_key};
use rollcall::store::{Store, StoreError};
use tracing::{info, instrument, warn};

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_LOCK_LEASE, DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, ImportConfig,
    MAX_CONCURRENCY, MAX_ROWS_CEILING,
};
pub use error::ImportError;
pub use failpoints::{Failpoints, Stage};
pub use notification::decode_key;
use notification::{Notification, unquote};

/// The SQS event, as Lambda's event source mapping delivers it, and the partial batch response.
pub use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// The importer: the store, the bucket, the limits and the failpoints.
#[derive(Debug, Clone)]
pub struct Importer {
    store: Store,
    bucket: Bucket,
    config: ImportConfig,
    failpoints: Failpoints,
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
        let applying = job.status == ImportStatus::Applying;
        let error = e.job_error(applying);
        // The template's ImportJobFailures metric counts this line.
        tracing::error!(code = %error.code, "import job failed");
        job.error = Some(error);
        let saved = if applying {
            // What the unwritten chunks had reserved is given back with the status.
            self.store.fail_applying_import(&mut job).await
        } else {
            job.status = ImportStatus::Failed;
            job.finished_at = Some(self.store.clock().now());
            self.store.save_import(&mut job).await
        };
        match saved {
            // Another delivery moved the job on meanwhile: it decides.
            Err(StoreError::VersionConflict) => return Ok(()),
            saved => saved?,
        }
        self.store.release_import_lock(tenant, id).await?;
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

    /// Removes the plan (it holds copies of users) once the job is over; the bucket's
    /// lifecycle removes it anyway if this fails.
    async fn cleanup(&self, job: &ImportJob) {
        if let Err(e) = self.bucket.delete(&job.plan_key()).await {
            warn!(error = %e, "could not remove the job's plan");
        }
    }
}
