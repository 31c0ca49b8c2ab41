//! The reports of a job, for people (CSV: UTF-8 with BOM, every cell formula-neutralised) and
//! for programs (JSON): `validation.*`, written before anything changes, and `result.*` once
//! the job has applied.

use std::collections::HashMap;

use rollcall::csv::CsvWriter;
use rollcall::domain::{Language, Localized, UserId};
use rollcall::import::{
    Counts, FileProblem, Header, ImportJob, JobError, ParsedRow, Planned, RowProblem,
};
use serde::{Deserialize, Serialize};

/// One problem as reports show it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportedProblem {
    /// The line of the file (`None` for a problem of the file as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The offset (0-based) of the byte the problem is at, where one byte is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<usize>,
    /// The column as the file's header writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Stable code.
    pub code: String,
    /// Japanese.
    pub message_ja: String,
    /// English.
    pub message_en: String,
}

impl ReportedProblem {
    /// A row's problem, naming its column the way `header` writes it.
    pub fn of_row(p: &RowProblem, header: Option<&Header>) -> ReportedProblem {
        ReportedProblem {
            line: Some(p.line),
            byte_offset: None,
            column: p
                .column
                .map(|c| header.map_or(c.name(), |h| h.written(c)).to_owned()),
            code: p.code.to_owned(),
            message_ja: p.message_ja.clone(),
            message_en: p.message_en.clone(),
        }
    }

    /// A problem of the whole file.
    pub fn of_file(p: &FileProblem) -> ReportedProblem {
        ReportedProblem {
            line: p.line(),
            byte_offset: p.byte_offset(),
            column: None,
            code: p.code().to_owned(),
            message_ja: p.message(Language::Ja),
            message_en: p.message(Language::En),
        }
    }

    /// The job's own error, as stored on it.
    pub fn job_error(&self) -> JobError {
        JobError {
            code: self.code.clone(),
            line: self.line,
            byte_offset: self.byte_offset,
            message_ja: self.message_ja.clone(),
            message_en: self.message_en.clone(),
        }
    }
}

/// One data row as the validation report lists it.
#[derive(Debug, Clone, Serialize)]
struct ValidatedRow<'a> {
    line: usize,
    operation: &'a str,
    login_id: &'a str,
    result: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<&'a ReportedProblem>,
}

#[derive(Serialize)]
struct ValidationJson<'a> {
    job_id: String,
    mode: &'static str,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<rollcall::csv::encoding::FileEncoding>,
    rows: usize,
    rows_invalid: usize,
    problems: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<Counts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_problem: Option<&'a ReportedProblem>,
    row_results: Vec<ValidatedRow<'a>>,
}

const VALIDATION_HEADER: [&str; 7] = [
    "line",
    "operation",
    "login_id",
    "result",
    "column",
    "message_ja",
    "message_en",
];

fn operation_text(row: &ParsedRow) -> &str {
    row.operation.map_or("", |o| o.as_str())
}

/// The validation report of a file refused as a whole.
pub fn file_refused(
    job: &ImportJob,
    problem: &ReportedProblem,
) -> Result<(String, Vec<u8>), serde_json::Error> {
    let mut csv = CsvWriter::new();
    csv.row(VALIDATION_HEADER);
    let line = problem.line.map(|l| l.to_string()).unwrap_or_default();
    csv.row([
        line.as_str(),
        "",
        "",
        "error",
        "",
        &problem.message_ja,
        &problem.message_en,
    ]);
    let json = ValidationJson {
        job_id: job.id.to_string(),
        mode: job.mode.as_str(),
        valid: false,
        encoding: None,
        rows: 0,
        rows_invalid: 0,
        problems: 1,
        counts: None,
        file_problem: Some(problem),
        row_results: Vec::new(),
    };
    Ok((csv.finish(), serde_json::to_vec(&json)?))
}

/// The validation report of a file whose rows were read: every row, `ok` or one report line
/// per problem.
pub fn validation(
    job: &ImportJob,
    encoding: rollcall::csv::encoding::FileEncoding,
    rows: &[ParsedRow],
    problems: &[ReportedProblem],
    counts: Option<Counts>,
) -> Result<(String, Vec<u8>), serde_json::Error> {
    let mut by_line: HashMap<usize, Vec<&ReportedProblem>> = HashMap::new();
    for p in problems {
        by_line.entry(p.line.unwrap_or(0)).or_default().push(p);
    }
    let mut csv = CsvWriter::new();
    csv.row(VALIDATION_HEADER);
    let mut row_results = Vec::with_capacity(rows.len());
    for row in rows {
        let line = row.line.to_string();
        let found = by_line.remove(&row.line).unwrap_or_default();
        if found.is_empty() {
            csv.row([
                line.as_str(),
                operation_text(row),
                &row.login_text,
                "ok",
                "",
                "",
                "",
            ]);
        }
        for p in &found {
            csv.row([
                line.as_str(),
                operation_text(row),
                &row.login_text,
                "error",
                p.column.as_deref().unwrap_or(""),
                &p.message_ja,
                &p.message_en,
            ]);
        }
        row_results.push(ValidatedRow {
            line: row.line,
            operation: operation_text(row),
            login_id: &row.login_text,
            result: if found.is_empty() { "ok" } else { "error" },
            problems: found,
        });
    }
    let rows_invalid = row_results.iter().filter(|r| r.result == "error").count();
    let json = ValidationJson {
        job_id: job.id.to_string(),
        mode: job.mode.as_str(),
        valid: problems.is_empty(),
        encoding: Some(encoding),
        rows: rows.len(),
        rows_invalid,
        problems: problems.len(),
        counts,
        file_problem: None,
        row_results,
    };
    Ok((csv.finish(), serde_json::to_vec(&json)?))
}

/// Per data row: line, operation and login id as written, for the result report.
pub type RowKeys = Vec<(usize, String, String)>;

#[derive(Deserialize)]
struct ValidationRows {
    row_results: Vec<RowRead>,
}

#[derive(Deserialize)]
struct RowRead {
    line: usize,
    operation: String,
    login_id: String,
}

/// The rows a validation report (`validation.json`, written by [`validation`]) lists: what a
/// resumed job needs for its result report, without keeping the file's rows anywhere else.
pub fn rows_of_validation(json: &[u8]) -> Result<RowKeys, serde_json::Error> {
    let report: ValidationRows = serde_json::from_slice(json)?;
    Ok(report
        .row_results
        .into_iter()
        .map(|r| (r.line, r.operation, r.login_id))
        .collect())
}

/// What one row did.
#[derive(Debug, Clone, Serialize)]
pub struct RowOutcome {
    /// The line.
    pub line: usize,
    /// The operation.
    pub operation: String,
    /// The login id.
    pub login_id: String,
    /// `created`, `updated`, `deleted` or `unchanged`.
    pub result: &'static str,
    /// The user it wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
}

/// What a change does to its row: the line, `created`, `updated` or `deleted`, and the user.
pub fn outcome_of(change: &Planned) -> (usize, &'static str, UserId) {
    match change {
        Planned::Create { line, user } => (*line, "created", user.id),
        Planned::Update { line, after, .. } => (*line, "updated", after.id),
        Planned::Delete { line, user } => (*line, "deleted", user.id),
    }
}

/// Per row, what the plan did (`done`, by line, from [`outcome_of`]), in file order.
pub fn outcomes(rows: &RowKeys, done: &HashMap<usize, (&'static str, UserId)>) -> Vec<RowOutcome> {
    rows.iter()
        .map(|(line, operation, login_id)| {
            let done = done.get(line);
            RowOutcome {
                line: *line,
                operation: operation.clone(),
                login_id: login_id.clone(),
                result: done.map_or("unchanged", |d| d.0),
                user_id: done.map(|d| d.1),
            }
        })
        .collect()
}

#[derive(Serialize)]
struct ResultJson<'a> {
    job_id: String,
    status: &'static str,
    counts: Counts,
    invitations: usize,
    row_results: &'a [RowOutcome],
}

/// The result report of an applied job.
pub fn result(
    job: &ImportJob,
    counts: Counts,
    invitations: usize,
    outcomes: &[RowOutcome],
) -> Result<(String, Vec<u8>), serde_json::Error> {
    let mut csv = CsvWriter::new();
    csv.row(["line", "operation", "login_id", "result", "user_id"]);
    for o in outcomes {
        let line = o.line.to_string();
        let id = o.user_id.map(|u| u.to_string()).unwrap_or_default();
        csv.row([
            line.as_str(),
            &o.operation,
            &o.login_id,
            o.result,
            id.as_str(),
        ]);
    }
    let json = ResultJson {
        job_id: job.id.to_string(),
        status: job.status.as_str(),
        counts,
        invitations,
        row_results: outcomes,
    };
    Ok((csv.finish(), serde_json::to_vec(&json)?))
}
