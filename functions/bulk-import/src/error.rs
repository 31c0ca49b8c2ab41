//! Why a message was not handled to the end, and whether another delivery can get further.

use rollcall::files::{FileError, FileErrorKind};
use rollcall::import::JobError;
use rollcall::store::StoreError;

use crate::Stage;

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
    /// The job's plan can't be written or read back.
    #[error(transparent)]
    Plan(#[from] rollcall::import::PlanError),
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
            ImportError::Refused(_) | ImportError::Plan(_) | ImportError::Report(_) => false,
        }
    }

    /// What the job says when this error ends it: a stable code and a message for the API.
    pub(crate) fn job_error(&self, writing: bool) -> JobError {
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
            ImportError::Store(StoreError::Corrupt(_)) | ImportError::Plan(_) => (
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
