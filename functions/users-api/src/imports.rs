//! `/imports*` and `/users/export.csv`: bulk import jobs and the export they re-import. Admins
//! only.
//!
//! The API never carries a file: `POST /imports` hands out a presigned `PUT` for the job's key,
//! S3 tells the queue, and bulk-import does the work; `GET /imports/{id}` hands out presigned
//! links to the reports, and the export is written to the bucket and answered with a redirect
//! to it, so no file is limited by Lambda's 6 MB response.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall::csv::encoding::{EncodingChoice, FileEncoding, encode_shift_jis};
use rollcall::domain::{ImportId, Language, Localized};
use rollcall::import::{
    ApplyRequest, Column, Counts, ImportJob, ImportMode, ImportStatus, JobRef, Journal, Report,
    export_csv,
};
use serde::Serialize;

use crate::AppState;
use crate::auth::Caller;
use crate::input::{Fields, JsonObject, Patch, QueryParams};
use crate::problem::{ApiError, FieldProblem};
use crate::views::rfc3339;

/// How long an upload link and a report link work.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Jobs `GET /imports` returns by default, and at most.
pub const DEFAULT_LIST: i32 = 20;
/// See [`DEFAULT_LIST`].
pub const MAX_LIST: i32 = 100;

/// The queue bulk-import reads, for apply requests.
#[derive(Debug, Clone)]
pub struct ImportQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl ImportQueue {
    /// The queue at `url`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> ImportQueue {
        ImportQueue {
            client,
            url: url.into(),
        }
    }

    async fn send(&self, request: &ApplyRequest) -> Result<(), ApiError> {
        let body = serde_json::to_string(request).map_err(ApiError::internal)?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| {
                ApiError::internal(anyhow::anyhow!(
                    "SendMessage to the import queue: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(())
    }
}

/// Where to upload the file.
#[derive(Debug, Serialize)]
pub struct UploadView {
    /// The presigned URL.
    pub url: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// When the URL stops working.
    pub expires_at: String,
}

/// Links to a job's reports.
#[derive(Debug, Default, Serialize)]
pub struct ReportLinks {
    /// The validation report for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_csv: Option<String>,
    /// The validation report for programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_json: Option<String>,
    /// The result report for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_csv: Option<String>,
    /// The result report for programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_json: Option<String>,
    /// When the links stop working.
    pub expires_at: String,
}

/// The problem that stopped a job, in the caller's language.
#[derive(Debug, Serialize)]
pub struct JobErrorView {
    /// Stable code.
    pub code: String,
    /// The line, if the problem is on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The offset (0-based) of the byte it is at, if one byte is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<usize>,
    /// The message.
    pub message: String,
}

/// One import job.
#[derive(Debug, Serialize)]
pub struct ImportView {
    /// The job's id.
    pub id: ImportId,
    /// `waiting`, `validating`, `invalid`, `validated`, `applying`, `applied` or `failed`.
    pub status: &'static str,
    /// `apply` or `validate`.
    pub mode: &'static str,
    /// The encoding asked for.
    pub encoding: EncodingChoice,
    /// The encoding the file was read in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_encoding: Option<FileEncoding>,
    /// Who created the job.
    pub created_by: String,
    /// When.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Data rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Rows with a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_invalid: Option<u64>,
    /// Problems found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<u64>,
    /// What the file does (validated) or did (applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// How far the apply got.
    pub progress: Journal,
    /// Why the job stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobErrorView>,
    /// Where to upload (only in the answer to `POST /imports`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadView>,
    /// Links to the reports written so far (single-job answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reports: Option<ReportLinks>,
}

impl ImportView {
    fn of(job: &ImportJob, lang: Language) -> ImportView {
        ImportView {
            id: job.id,
            status: job.status.as_str(),
            mode: job.mode.as_str(),
            encoding: job.encoding,
            file_encoding: job.file_encoding,
            created_by: job.created_by.to_string(),
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            finished_at: job.finished_at.map(rfc3339),
            rows: job.rows,
            rows_invalid: job.rows_invalid,
            problems: job.problems,
            counts: job.counts,
            progress: job.journal,
            error: job.error.as_ref().map(|e| JobErrorView {
                code: e.code.clone(),
                line: e.line,
                byte_offset: e.byte_offset,
                message: match lang {
                    Language::Ja => e.message_ja.clone(),
                    Language::En => e.message_en.clone(),
                },
            }),
            upload: None,
            reports: None,
        }
    }
}

/// The caller's language, from `Accept-Language`.
pub struct Lang(pub Language);

impl FromRequestParts<AppState> for Lang {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(Lang(crate::problem::request_language(&parts.headers)))
    }
}

/// A job id in the path.
pub struct ImportIdParam(pub ImportId);

impl FromRequestParts<AppState> for ImportIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::RouteNotFound)?;
        // Not an id: no such job.
        ImportId::parse(&raw)
            .map(ImportIdParam)
            .map_err(|_| ApiError::ImportNotFound)
    }
}

async fn load(state: &AppState, caller: &Caller, id: &ImportId) -> Result<ImportJob, ApiError> {
    match state.store.get_import(&caller.tenant, id).await {
        Ok(job) => Ok(job),
        Err(rollcall::store::StoreError::NotFound) => Err(ApiError::ImportNotFound),
        Err(e) => Err(e.into()),
    }
}

/// `POST /imports {mode, encoding?}`: a new job and where to upload its file.
pub async fn create_import(
    State(state): State<AppState>,
    caller: Caller,
    Lang(lang): Lang,
    body: JsonObject,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    // The job runs as its creator, so the creator must be an active admin as stored, not only
    // by the token: an invited admin (no password yet), a suspended or a demoted one gets 403
    // here rather than a job refused later.
    match state.store.get_user(&caller.tenant, &caller.user_id).await {
        Ok(user) if user.is_active_admin() => {}
        Ok(_) | Err(rollcall::store::StoreError::NotFound) => return Err(ApiError::Forbidden),
        Err(e) => return Err(e.into()),
    }
    let mut fields = Fields::new(body.map);
    let mode = fields.required_string("mode");
    let encoding = fields.string("encoding");
    let mode = match mode.as_deref() {
        Some("apply") => Some(ImportMode::Apply),
        Some("validate") => Some(ImportMode::Validate),
        Some(_) => {
            fields.problem(FieldProblem::custom(
                "mode",
                "mode_invalid",
                "apply か validate を指定してください。",
                "Must be apply or validate.",
            ));
            None
        }
        None => None,
    };
    let encoding = match fields.parse("encoding", encoding, EncodingChoice::parse) {
        Patch::Value(e) => Some(e),
        Patch::Null => Some(EncodingChoice::Auto),
        // Absent, or refused (the problem is recorded).
        Patch::Absent => fields
            .problems
            .iter()
            .all(|p| p.field != "encoding")
            .then_some(EncodingChoice::Auto),
    };
    let problems = fields.finish();
    let (Some(mode), Some(encoding), true) = (mode, encoding, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let now = state.store.clock().now();
    let job = ImportJob::new(caller.tenant.clone(), caller.user_id, mode, encoding, now);
    state.store.create_import(&job).await?;
    let url = state
        .bucket
        .presigned_put(&job.upload_key(), LINK_TTL)
        .await
        .map_err(ApiError::internal)?;
    let mut view = ImportView::of(&job, lang);
    view.upload = Some(UploadView {
        url,
        method: "PUT",
        expires_at: rfc3339(now + LINK_TTL),
    });
    let location = format!("/imports/{}", job.id);
    let mut resp = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /imports/{id}`: the job, with links to the reports written so far.
pub async fn get_import(
    State(state): State<AppState>,
    caller: Caller,
    Lang(lang): Lang,
    ImportIdParam(id): ImportIdParam,
) -> Result<Json<ImportView>, ApiError> {
    caller.ensure_admin()?;
    let job = load(&state, &caller, &id).await?;
    let mut view = ImportView::of(&job, lang);
    let now = state.store.clock().now();
    let mut links = ReportLinks {
        expires_at: rfc3339(now + LINK_TTL),
        ..ReportLinks::default()
    };
    let validated = matches!(
        job.status,
        ImportStatus::Invalid
            | ImportStatus::Validated
            | ImportStatus::Applying
            | ImportStatus::Applied
            | ImportStatus::Failed
    );
    let link = |report: Report, format: &'static str| {
        let key = job.report_key(report, format);
        let filename = format!("{}-{}.{format}", job.id, report.name());
        let bucket = state.bucket.clone();
        async move {
            bucket
                .presigned_get(&key, &filename, LINK_TTL)
                .await
                .map_err(ApiError::internal)
        }
    };
    if validated {
        links.validation_csv = Some(link(Report::Validation, "csv").await?);
        links.validation_json = Some(link(Report::Validation, "json").await?);
    }
    if job.status == ImportStatus::Applied && job.journal.chunks > 0 {
        links.result_csv = Some(link(Report::Result, "csv").await?);
        links.result_json = Some(link(Report::Result, "json").await?);
    }
    view.reports = Some(links);
    Ok(Json(view))
}

/// `GET /imports`
#[derive(Debug, Serialize)]
pub struct ImportList {
    /// The most recent jobs, newest first.
    pub items: Vec<ImportView>,
}

/// `GET /imports?limit=`: the most recent jobs.
pub async fn list_imports(
    State(state): State<AppState>,
    caller: Caller,
    Lang(lang): Lang,
    params: QueryParams,
) -> Result<Json<ImportList>, ApiError> {
    caller.ensure_admin()?;
    let mut problems = params.unknown(&["limit"]);
    let limit = match params.get("limit") {
        None => DEFAULT_LIST,
        Some(raw) => match raw.parse::<i32>() {
            Ok(n) if (1..=MAX_LIST).contains(&n) => n,
            _ => {
                problems.push(FieldProblem::custom(
                    "limit",
                    "limit_invalid",
                    &format!("1 から {MAX_LIST} までの整数で指定してください。"),
                    &format!("Must be a whole number from 1 to {MAX_LIST}."),
                ));
                DEFAULT_LIST
            }
        },
    };
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }
    let jobs = state.store.list_imports(&caller.tenant, limit).await?;
    if jobs.is_empty() {
        // No jobs may mean no tenant (a token naming one): 404, not an empty list.
        state.store.get_tenant(&caller.tenant).await?;
    }
    Ok(Json(ImportList {
        items: jobs.iter().map(|j| ImportView::of(j, lang)).collect(),
    }))
}

/// `POST /imports/{id}/apply`: applies a validated job's file; it is checked again under the
/// tenant's lock first, as the directory may have changed since.
pub async fn apply_import(
    State(state): State<AppState>,
    caller: Caller,
    Lang(lang): Lang,
    ImportIdParam(id): ImportIdParam,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    let queue = state
        .import_queue
        .clone()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("IMPORT_QUEUE_URL is not configured")))?;
    let mut job = load(&state, &caller, &id).await?;
    if job.status != ImportStatus::Validated {
        return Err(ApiError::ImportNotValidated(job.status.as_str()));
    }
    job.mode = ImportMode::Apply;
    job.status = ImportStatus::Waiting;
    job.finished_at = None;
    state
        .store
        .save_import(&mut job)
        .await
        .map_err(|e| match e {
            rollcall::store::StoreError::VersionConflict => {
                ApiError::ImportNotValidated("changing")
            }
            e => e.into(),
        })?;
    let request = ApplyRequest {
        apply: JobRef {
            tenant: job.tenant.clone(),
            job: job.id,
        },
    };
    if let Err(e) = queue.send(&request).await {
        // Nothing will pick the job up: put it back, so the admin can ask again.
        job.mode = ImportMode::Validate;
        job.status = ImportStatus::Validated;
        if let Err(undo) = state.store.save_import(&mut job).await {
            tracing::error!(error = %undo, import_id = %job.id, "could not put an unqueued job back to validated");
        }
        return Err(e);
    }
    Ok((StatusCode::ACCEPTED, Json(ImportView::of(&job, lang))).into_response())
}

fn csv_response(filename: &str, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// The only query parameter `name`, one of two values: `false` for the first (the default),
/// `true` for the second. Anything else is a 400 naming the parameter.
fn second_of_two(
    params: &QueryParams,
    name: &'static str,
    code: &'static str,
    [first, second]: [&str; 2],
) -> Result<bool, ApiError> {
    let mut problems = params.unknown(&[name]);
    let chosen = match params.get(name) {
        None => false,
        Some(v) if v == first => false,
        Some(v) if v == second => true,
        Some(_) => {
            problems.push(FieldProblem::custom(
                name,
                code,
                &format!("{first} か {second} を指定してください。"),
                &format!("Must be {first} or {second}."),
            ));
            false
        }
    };
    if problems.is_empty() {
        Ok(chosen)
    } else {
        Err(ApiError::BadRequest(problems))
    }
}

/// `GET /imports/template.csv?headers=en|ja`: an empty import file (UTF-8 with BOM) with every
/// column, named in English or Japanese.
pub async fn template(caller: Caller, params: QueryParams) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    let japanese = second_of_two(&params, "headers", "headers_invalid", ["en", "ja"])?;
    let mut csv = rollcall::csv::CsvWriter::new();
    csv.row(Column::ALL.iter().map(|c| {
        if japanese {
            c.japanese_name()
        } else {
            c.name()
        }
    }));
    Ok(csv_response(
        "rollcall-import-template.csv",
        "text/csv; charset=utf-8",
        csv.finish().into_bytes(),
    ))
}

/// `GET /users/export.csv?encoding=utf-8|shift_jis`: every live user as EDIT rows of an import
/// file, written to the bucket; the answer redirects (303) to a presigned link to it.
pub async fn export_users(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryParams,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    let shift_jis = second_of_two(
        &params,
        "encoding",
        "encoding_invalid",
        ["utf-8", "shift_jis"],
    )?;
    let users = state.store.all_users(&caller.tenant).await?;
    let text = export_csv(&users);
    let (body, content_type) = if shift_jis {
        let bytes = encode_shift_jis(text.trim_start_matches(rollcall::csv::BOM))
            .map_err(|e| ApiError::NotShiftJis(e.message(Language::Ja), e.message(Language::En)))?;
        (bytes, "text/csv; charset=Shift_JIS")
    } else {
        (text.into_bytes(), "text/csv; charset=utf-8")
    };
    let now = state.store.clock().now();
    let stamp = now.format("%Y%m%dT%H%M%S%3fZ");
    let key = format!("exports/{}/{stamp}.csv", caller.tenant);
    state
        .bucket
        .put(&key, content_type, body)
        .await
        .map_err(ApiError::internal)?;
    let filename = format!("{}-users-{}.csv", caller.tenant, now.format("%Y%m%d"));
    let url = state
        .bucket
        .presigned_get(&key, &filename, LINK_TTL)
        .await
        .map_err(ApiError::internal)?;
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(&url).map_err(ApiError::internal)?;
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}
