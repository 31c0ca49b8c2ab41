//! Bulk import: files of NEW / EDIT / DELETE rows that admins upload. Every row is read
//! ([`parse_file`]) and checked against the directory ([`check`]) before anything changes;
//! one bad row and nothing is applied.

mod check;
mod columns;
mod export;
mod job;
mod rows;

pub use check::{Counts, Directory, Plan, Planned, check};

pub use columns::{Column, Header, HeaderProblem, header_key};
pub use export::export_csv;
pub use job::{
    ApplyRequest, DerivedIds, ImportJob, ImportMode, ImportStatus, JobError, JobRef, Journal,
    Report, parse_upload_key, upload_key,
};
pub use rows::{
    Creating, DateTimeError, FileProblem, Operation, ParsedFile, ParsedRow, RowAction, RowProblem,
    format_datetime, parse_datetime, parse_file, split_set,
};
