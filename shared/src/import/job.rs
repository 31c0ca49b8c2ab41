//! An import job: one uploaded file, what it asked for and how far it got.
//!
//! `waiting` (created, the upload may come) → `validating` → `invalid` (a problem; nothing
//! changed) or `validated` (mode `validate`, or nothing to do) or `applying` → `applied`.
//! `failed` is an apply that could not finish (the lock was lost, the store refused a chunk);
//! its error says what happened. `POST /imports/{id}/apply` turns a `validated` job back into a
//! `waiting` one with mode `apply`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::{self, Write as _};
use ulid::Ulid;

use super::check::Counts;
use crate::csv::encoding::{EncodingChoice, FileEncoding};
use crate::domain::{ImportId, TenantId, UserId};

/// What the uploader wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Check every row, write the report, and apply if every row is valid.
    Apply,
    /// Check every row and write the report; change nothing.
    Validate,
}

impl ImportMode {
    /// The mode's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportMode::Apply => "apply",
            ImportMode::Validate => "validate",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Created; waiting for its file.
    Waiting,
    /// Reading and checking the file.
    Validating,
    /// A problem with the file or a row; nothing was changed.
    Invalid,
    /// Every row is valid and the job only validates (or waits for `apply`).
    Validated,
    /// Writing the rows; the journal says how far.
    Applying,
    /// Every row is written and the invitations are released.
    Applied,
    /// The apply could not finish; see the error.
    Failed,
}

impl ImportStatus {
    /// The status's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Waiting => "waiting",
            ImportStatus::Validating => "validating",
            ImportStatus::Invalid => "invalid",
            ImportStatus::Validated => "validated",
            ImportStatus::Applying => "applying",
            ImportStatus::Applied => "applied",
            ImportStatus::Failed => "failed",
        }
    }

    /// Whether the job is over (a delivery of its file has nothing left to do).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ImportStatus::Invalid
                | ImportStatus::Validated
                | ImportStatus::Applied
                | ImportStatus::Failed
        )
    }
}

/// A problem that stopped the job as a whole, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Stable code.
    pub code: String,
    /// The line it is on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The offset (0-based) of the byte it is at, if one byte is to blame (a byte that is
    /// not text in the file's encoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<usize>,
    /// Japanese message.
    pub message_ja: String,
    /// English message.
    pub message_en: String,
}

/// How far an apply got. Each chunk commits its own journal entry with its rows (see
/// `Store::import_journal`); the job carries the sum, written every second or so while the
/// apply runs and exactly when it ends, for `GET /imports/{id}` and `rollcall import`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Chunks of user writes in the plan.
    pub chunks: u32,
    /// Chunks committed.
    pub chunks_done: u32,
    /// Chunks of invitations to release once every user chunk is committed.
    pub invitation_chunks: u32,
    /// Invitation chunks committed.
    pub invitation_chunks_done: u32,
    /// Rows (changes) committed.
    #[serde(default)]
    pub applied_rows: u64,
    /// Rows committed per second since this delivery began writing (none before its first
    /// chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_per_second: Option<u32>,
}

impl Journal {
    /// Whether every user write is committed.
    pub fn users_committed(&self) -> bool {
        self.chunks_done >= self.chunks
    }

    /// Whether every invitation is released too.
    pub fn complete(&self) -> bool {
        self.users_committed() && self.invitation_chunks_done >= self.invitation_chunks
    }
}

/// A job's reports, each written as CSV (for people) and JSON (for programs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Every row checked, written before anything changes.
    Validation,
    /// What each row did, once the job applied.
    Result,
}

impl Report {
    /// The report's file name without the extension.
    pub fn name(self) -> &'static str {
        match self {
            Report::Validation => "validation",
            Report::Result => "result",
        }
    }
}

/// One import job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportJob {
    /// The job's id.
    pub id: ImportId,
    /// The tenant.
    pub tenant: TenantId,
    /// What to do with the file.
    pub mode: ImportMode,
    /// The encoding the uploader named (or auto).
    pub encoding: EncodingChoice,
    /// Where the job is.
    pub status: ImportStatus,
    /// The admin who created the job.
    pub created_by: UserId,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Raised by every write of the job (optimistic concurrency).
    pub version: u64,
    /// The ETag of the upload the job read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The encoding the file turned out to be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_encoding: Option<FileEncoding>,
    /// Data rows in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Rows with at least one problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_invalid: Option<u64>,
    /// Problems found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<u64>,
    /// What the file does (or did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// The problem that stopped the job as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// The time the apply stamps on every change it makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<DateTime<Utc>>,
    /// How far the apply got.
    #[serde(default)]
    pub journal: Journal,
    /// How the whole plan moves the tenant's counters: reserved once, with the step to
    /// `applying`, before the first chunk; a job that fails part-way gives back the part of
    /// it that its unwritten chunks held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<crate::store::TenantDelta>,
    /// When the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl ImportJob {
    /// A new job waiting for its file.
    pub fn new(
        tenant: TenantId,
        created_by: UserId,
        mode: ImportMode,
        encoding: EncodingChoice,
        now: DateTime<Utc>,
    ) -> ImportJob {
        ImportJob {
            id: ImportId::generate(),
            tenant,
            mode,
            encoding,
            status: ImportStatus::Waiting,
            created_by,
            created_at: now,
            updated_at: now,
            version: 1,
            etag: None,
            file_encoding: None,
            rows: None,
            rows_invalid: None,
            problems: None,
            counts: None,
            error: None,
            applied_at: None,
            journal: Journal::default(),
            reserved: None,
            finished_at: None,
        }
    }

    /// The key the file is uploaded to: `imports/{tid}/{jid}.csv`.
    pub fn upload_key(&self) -> String {
        upload_key(&self.tenant, &self.id)
    }

    /// The key of one of the job's reports: `reports/{tid}/{jid}/{report}.{format}`, e.g.
    /// `(Report::Validation, "csv")`.
    pub fn report_key(&self, report: Report, format: &str) -> String {
        format!(
            "reports/{}/{}/{}.{format}",
            self.tenant,
            self.id,
            report.name()
        )
    }

    /// The key of the job's plan, written before the first change and read by a resumed apply.
    pub fn plan_key(&self) -> String {
        format!("imports/{}/{}.plan.jsonl.gz", self.tenant, self.id)
    }
}

/// The message the API queues to have a validated job applied (uploads arrive as S3
/// notifications instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The job.
    pub apply: JobRef,
}

/// A job, by tenant and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    /// The tenant.
    pub tenant: TenantId,
    /// The job.
    pub job: ImportId,
}

/// The ids a job derives for its rows: the apply time in the timestamp, and 80 bits of SHA-256
/// of `{job}/{purpose}/{line}`, so a resumed or repeated job computes the same ids. The hash of
/// the text before the line is computed once; each line adds only its number (a file creates
/// up to 100,000 users).
#[derive(Clone)]
pub struct DerivedIds {
    prefix: Sha256,
    ms: u64,
}

impl DerivedIds {
    /// The ids `job` derives for `purpose` (`user`, `invite`) at `at`.
    pub fn new(job: &ImportId, at: DateTime<Utc>, purpose: &str) -> DerivedIds {
        let mut prefix = Hashing(Sha256::new());
        // Writing into a hash can't fail.
        let _ = write!(prefix, "{job}/{purpose}/");
        DerivedIds {
            prefix: prefix.0,
            ms: u64::try_from(at.timestamp_millis()).unwrap_or(0),
        }
    }

    /// The id of `line`.
    pub fn of_line(&self, line: usize) -> Ulid {
        let mut hashing = Hashing(self.prefix.clone());
        let _ = write!(hashing, "{line}");
        let digest = hashing.0.finalize();
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        Ulid::from_parts(self.ms, u128::from_be_bytes(random))
    }
}

/// Text written into a hash.
struct Hashing(Sha256);

impl fmt::Write for Hashing {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// `imports/{tid}/{jid}.csv`.
pub fn upload_key(tenant: &TenantId, id: &ImportId) -> String {
    format!("imports/{tenant}/{id}.csv")
}

/// Reads `imports/{tid}/{jid}.csv` (already URL-decoded) back into its tenant and job.
pub fn parse_upload_key(key: &str) -> Option<(TenantId, ImportId)> {
    let rest = key.strip_prefix("imports/")?.strip_suffix(".csv")?;
    let (tenant, id) = rest.split_once('/')?;
    let tenant = TenantId::parse(tenant).ok()?;
    let id = ImportId::parse(id).ok()?;
    (id.to_string() == rest[tenant.as_str().len() + 1..]).then_some((tenant, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_depend_on_job_purpose_and_line_only() {
        let job = ImportId::generate();
        let at = Utc::now();
        let derived_ulid = |job: &ImportId, purpose: &str, line: usize| {
            DerivedIds::new(job, at, purpose).of_line(line)
        };
        let a = derived_ulid(&job, "user", 2);
        assert_eq!(a, derived_ulid(&job, "user", 2));
        assert_ne!(a, derived_ulid(&job, "user", 3));
        assert_ne!(a, derived_ulid(&job, "invite", 2));
        assert_ne!(a, derived_ulid(&ImportId::generate(), "user", 2));
        assert_eq!(
            a.timestamp_ms(),
            u64::try_from(at.timestamp_millis()).unwrap()
        );
        // The random part is the first 80 bits of SHA-256 of the text.
        let digest = Sha256::digest(format!("{job}/user/2").as_bytes());
        assert_eq!(
            a.random().to_be_bytes()[6..],
            digest[..10],
            "{a} from {digest:x?}"
        );
    }

    #[test]
    fn upload_keys_round_trip_and_nothing_else_is_a_job() {
        let t = TenantId::parse("acme").unwrap();
        let id = ImportId::generate();
        assert_eq!(parse_upload_key(&upload_key(&t, &id)), Some((t, id)));
        for key in [
            "imports/acme.csv",
            "imports/acme/x.csv",
            "reports/acme/01J00000000000000000000000.csv",
            &format!("imports/acme/{id}.plan.jsonl.gz"),
            &format!("imports/acme/sub/{id}.csv"),
            &format!("imports/{id}.csv"),
            &format!("imports/acme/{}.csv", id.to_string().to_lowercase()),
        ] {
            assert_eq!(parse_upload_key(key), None, "{key}");
        }
    }
}
