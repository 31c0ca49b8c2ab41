//! Bulk import: files of NEW / EDIT / DELETE rows that admins upload. Every row is read
//! ([`parse_file`]) and checked against the directory ([`check`]) before anything changes;
//! one bad row and nothing is applied.

mod check;
mod columns;
mod datetime;
mod duplicates;
mod export;
mod job;
mod plan;
mod problems;
mod rows;

pub use check::{Counts, Directory, Plan, Planned, check};

pub use columns::{Column, Header, HeaderProblem, header_key};
pub use datetime::{DateTimeError, format_datetime, parse_datetime};
pub use export::export_csv;
pub use job::{
    ApplyRequest, DerivedIds, ImportJob, ImportMode, ImportStatus, JobError, JobRef, Journal,
    Report, parse_upload_key, upload_key,
};
pub use plan::{
    Chunk, INVITATIONS_PER_CHUNK, PlanChunks, PlanError, PlanReader, chunk_ranges, decode_plan,
    encode_plan,
};
pub use problems::{FileProblem, RowProblem};
pub use rows::{Creating, Operation, ParsedFile, ParsedRow, RowAction, parse_file, split_set};
