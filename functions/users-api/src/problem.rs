//! Every error the API can answer with, mapped to its HTTP status, stable `code` and message in
//! one exhaustive `match`, and rendered as RFC 9457 `application/problem+json` in the caller's
//! language.
//!
//! Handlers return `Err(ApiError)`; its `IntoResponse` only parks the error in the response's
//! extensions. The [`localize`] middleware, which sees the request's `Accept-Language` and path,
//! renders it. That keeps one renderer for handler errors, extractor rejections and fallbacks.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rollcall::domain::{Language, Localized, TokenState, TransitionError};
use rollcall::store::StoreError;
use serde::Serialize;

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field (JSON member, query parameter or header).
    pub field: String,
    /// A stable code, e.g. `email_invalid`.
    pub code: &'static str,
    ja: String,
    en: String,
}

impl FieldProblem {
    /// A problem described by a localized domain error.
    pub fn new(field: impl Into<String>, error: &dyn Localized) -> Self {
        FieldProblem {
            field: field.into(),
            code: error.code(),
            ja: error.message(Language::Ja),
            en: error.message(Language::En),
        }
    }

    /// A problem with its own code and messages.
    pub fn custom(field: impl Into<String>, code: &'static str, ja: &str, en: &str) -> Self {
        FieldProblem {
            field: field.into(),
            code,
            ja: ja.to_owned(),
            en: en.to_owned(),
        }
    }

    fn message(&self, lang: Language) -> &str {
        match lang {
            Language::Ja => &self.ja,
            Language::En => &self.en,
        }
    }
}

impl From<rollcall::domain::PatchProblem> for FieldProblem {
    fn from(p: rollcall::domain::PatchProblem) -> Self {
        FieldProblem {
            field: p.field.name().to_owned(),
            code: p.code,
            ja: p.message_ja,
            en: p.message_en,
        }
    }
}

/// Why a caller was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// The token is malformed, wrongly signed, or lacks a claim.
    Invalid,
    /// The token has expired.
    Expired,
    /// A token rollcall issued whose sign-in has ended: revoked, signed out everywhere, or its
    /// user may no longer sign in (suspended, deleted, outside the validity window).
    Revoked,
}

/// Everything the API answers with other than success.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// 401: no valid bearer token.
    Unauthenticated(AuthFailure),
    /// 403: the caller's role does not allow this.
    Forbidden,
    /// 403: nobody may delete, suspend or change the role of their own account.
    SelfAction,
    /// 404: no such user in the caller's tenant.
    UserNotFound,
    /// 404: the token names a tenant that does not exist.
    TenantNotFound,
    /// 404: no such route.
    RouteNotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 400: the body is not JSON (or not an object).
    InvalidJson(String),
    /// 415: a body that is not `application/json`.
    UnsupportedMediaType,
    /// 413: the body is over the limit.
    PayloadTooLarge(usize),
    /// 400: bad query parameters or headers.
    BadRequest(Vec<FieldProblem>),
    /// 400: the cursor was not made for this tenant and query.
    InvalidCursor,
    /// 422: one or more fields are invalid.
    Validation(Vec<FieldProblem>),
    /// 409: the email address is in use in this tenant.
    EmailTaken,
    /// 409: the login id is in use in this tenant.
    LoginIdTaken,
    /// 412: `If-Match` does not match, or the user changed concurrently.
    PreconditionFailed,
    /// 409: a bulk import holds the tenant.
    ImportInProgress,
    /// 409: this would leave the tenant without an active admin.
    LastAdmin,
    /// 409: every seat of the tenant's limit is taken.
    SeatLimitReached(u32),
    /// 409: the status change is not allowed from the current status.
    InvalidTransition(TransitionError),
    /// 422: the `Idempotency-Key` was used with another body.
    IdempotencyKeyReused,
    /// 404: no snapshot was taken for this month.
    SnapshotNotFound,
    /// 404: the tenant has no import job with this id.
    ImportNotFound,
    /// 404: the tenant has no client with this id.
    ClientNotFound,
    /// 409: only a validated job can be applied; this one is in the named status.
    ImportNotValidated(&'static str),
    /// 422: the export can't be written in Shift_JIS; the message names the user and character.
    NotShiftJis(String, String),
    /// 404: no invitation has this link.
    InvitationNotFound,
    /// 410: the invitation link has expired.
    InvitationExpired,
    /// 409: the invitation link was used already.
    InvitationUsed,
    /// 410: the invitation was withdrawn (a newer one replaced it, or the user was removed).
    InvitationRevoked,
    /// 422: the password breaks these rules of the tenant's policy.
    PasswordRejected(Vec<FieldProblem>),
    /// 409: a suspended user can't be invited.
    NotInvitable,
    /// 429: the invitation was resent too often; retry after this many seconds.
    TooManyResends(i64),
    /// 409: only an active user's password can be reset (an invited one has the invitation).
    NotResettable,
    /// 429: the account had 5 reset mails this hour; retry after this many seconds.
    TooManyResets(i64),
    /// 422: the current password was not right (or the account can't sign in now).
    CurrentPasswordWrong,
    /// 503: conflicting writes or throttling; retry.
    Busy,
    /// 500: something unexpected; the cause is logged, not returned.
    Internal(Arc<anyhow::Error>),
}

impl ApiError {
    /// An unexpected failure: logs the whole cause chain now, returns an opaque 500 later.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        let e = e.into();
        tracing::error!(error = ?e, "request failed unexpectedly");
        ApiError::Internal(Arc::new(e))
    }

    /// The status, code and message of this error.
    fn describe(&self, lang: Language) -> (StatusCode, &'static str, String) {
        use ApiError as E;
        use Language::{En, Ja};
        let (status, code, ja, en): (StatusCode, &'static str, String, String) = match self {
            E::Unauthenticated(AuthFailure::Missing) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "認証トークンが必要です。".into(),
                "A bearer token is required.".into(),
            ),
            E::Unauthenticated(AuthFailure::Invalid) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "認証トークンが正しくありません。".into(),
                "The bearer token is not valid.".into(),
            ),
            E::Unauthenticated(AuthFailure::Revoked) => (
                StatusCode::UNAUTHORIZED,
                "token_revoked",
                "このサインインは終了しています。もう一度サインインしてください。".into(),
                "This sign-in has ended (signed out, revoked, or the account can't sign in now). Sign in again.".into(),
            ),
            E::Unauthenticated(AuthFailure::Expired) => (
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "認証トークンの有効期限が切れています。".into(),
                "The bearer token has expired.".into(),
            ),
            E::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "この操作を行う権限がありません。".into(),
                "Your role does not allow this.".into(),
            ),
            E::SelfAction => (
                StatusCode::FORBIDDEN,
                "self_action_forbidden",
                "自分自身の削除・停止・権限変更はできません。".into(),
                "You can't delete, suspend or change the role of your own account.".into(),
            ),
            E::UserNotFound => (
                StatusCode::NOT_FOUND,
                "user_not_found",
                "ユーザーが見つかりません。".into(),
                "No such user.".into(),
            ),
            E::TenantNotFound => (
                StatusCode::NOT_FOUND,
                "tenant_not_found",
                "テナントが見つかりません。".into(),
                "No such tenant.".into(),
            ),
            E::RouteNotFound => (
                StatusCode::NOT_FOUND,
                "route_not_found",
                "そのURLは存在しません。".into(),
                "No such route.".into(),
            ),
            E::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "このURLではそのメソッドは使えません。".into(),
                "This route does not accept that method.".into(),
            ),
            E::InvalidJson(why) => (
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("リクエスト本文がJSONとして正しくありません: {why}"),
                format!("The request body is not valid JSON: {why}"),
            ),
            E::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type は application/json にしてください。".into(),
                "The request body must be application/json.".into(),
            ),
            E::PayloadTooLarge(max) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("リクエスト本文は{max}バイト以内にしてください。"),
                format!("The request body must be at most {max} bytes."),
            ),
            E::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "リクエストのパラメータが正しくありません。".into(),
                "Some request parameters are not valid.".into(),
            ),
            E::InvalidCursor => (
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "カーソルが正しくありません。最初のページから取得し直してください。".into(),
                "The cursor is not valid; start again from the first page.".into(),
            ),
            E::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "入力内容に誤りがあります。".into(),
                "Some fields are not valid.".into(),
            ),
            E::EmailTaken => (
                StatusCode::CONFLICT,
                "email_taken",
                "このメールアドレスは既に使われています。".into(),
                "This email address is already in use.".into(),
            ),
            E::LoginIdTaken => (
                StatusCode::CONFLICT,
                "login_id_taken",
                "このログインIDは既に使われています。".into(),
                "This login id is already in use.".into(),
            ),
            E::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "ユーザーが他の操作で更新されています。最新の内容を取得してやり直してください。"
                    .into(),
                "The user was changed since you read it; fetch it again and retry.".into(),
            ),
            E::ImportInProgress => (
                StatusCode::CONFLICT,
                "import_in_progress",
                "一括登録の処理中です。完了してからやり直してください。".into(),
                "A bulk import is in progress for this tenant; retry when it has finished.".into(),
            ),
            E::LastAdmin => (
                StatusCode::CONFLICT,
                "last_admin",
                "最後の有効な管理者は削除・停止・降格できません。".into(),
                "The tenant's last active admin can't be removed, suspended or demoted.".into(),
            ),
            E::ImportNotFound => (
                StatusCode::NOT_FOUND,
                "import_not_found",
                "このインポートはありません。".into(),
                "No such import.".into(),
            ),
            E::ClientNotFound => (
                StatusCode::NOT_FOUND,
                "client_not_found",
                "このクライアントはありません。".into(),
                "No such client.".into(),
            ),
            E::ImportNotValidated(status) => (
                StatusCode::CONFLICT,
                "import_not_validated",
                format!(
                    "適用できるのは検証済み（validated）のインポートだけです。このインポートは {status} です。"
                ),
                format!("Only a validated import can be applied; this one is {status}."),
            ),
            E::NotShiftJis(ja, en) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_shift_jis",
                ja.clone(),
                en.clone(),
            ),
            E::SnapshotNotFound => (
                StatusCode::NOT_FOUND,
                "snapshot_not_found",
                "この月の請求スナップショットはまだありません。".into(),
                "No billing snapshot has been taken for this month.".into(),
            ),
            E::SeatLimitReached(limit) => (
                StatusCode::CONFLICT,
                "seat_limit_reached",
                format!(
                    "契約ユーザー数の上限（{limit}）に達しています。ユーザーを停止または削除して枠を空けてください。"
                ),
                format!(
                    "The tenant's seat limit ({limit}) is reached. Suspend or delete a user to free a seat."
                ),
            ),
            E::InvalidTransition(t) => (
                StatusCode::CONFLICT,
                "invalid_transition",
                t.message(Ja),
                t.message(En),
            ),
            E::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "この Idempotency-Key は別の内容のリクエストで使われています。".into(),
                "This Idempotency-Key was used with a different request body.".into(),
            ),
            E::InvitationNotFound => (
                StatusCode::NOT_FOUND,
                "invitation_not_found",
                "この招待リンクは見つかりません。メールのリンクをそのまま開いてください。".into(),
                "No invitation has this link. Open the link from the mail exactly as it is.".into(),
            ),
            E::InvitationExpired => (
                StatusCode::GONE,
                TokenState::Expired.code(),
                TokenState::Expired.message(Ja),
                TokenState::Expired.message(En),
            ),
            E::InvitationUsed => (
                StatusCode::CONFLICT,
                TokenState::Used.code(),
                TokenState::Used.message(Ja),
                TokenState::Used.message(En),
            ),
            E::InvitationRevoked => (
                StatusCode::GONE,
                TokenState::Revoked.code(),
                TokenState::Revoked.message(Ja),
                TokenState::Revoked.message(En),
            ),
            E::PasswordRejected(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "password_rejected",
                "パスワードが条件を満たしていません。".into(),
                "The password does not meet the rules.".into(),
            ),
            E::NotInvitable => (
                StatusCode::CONFLICT,
                "not_invitable",
                "停止中のユーザーには招待を送れません。先に再開してください。".into(),
                "A suspended user can't be invited; reactivate them first.".into(),
            ),
            E::TooManyResends(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_resends",
                "招待の再送は1時間に5回までです。しばらくしてからやり直してください。".into(),
                "An invitation can be resent at most 5 times an hour; retry later.".into(),
            ),
            E::NotResettable => (
                StatusCode::CONFLICT,
                "not_resettable",
                "パスワードを再設定できるのは有効なユーザーだけです。招待中のユーザーには招待を再送してください。".into(),
                "Only an active user's password can be reset; resend an invited user's invitation instead.".into(),
            ),
            E::TooManyResets(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_resets",
                "パスワード再設定のメールは1アカウントにつき1時間に5通までです。しばらくしてからやり直してください。".into(),
                "An account gets at most 5 reset mails an hour; retry later.".into(),
            ),
            E::CurrentPasswordWrong => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "current_password_wrong",
                "現在のパスワードが正しくないか、現在このアカウントではサインインできません。".into(),
                "The current password is incorrect, or this account can't sign in now.".into(),
            ),
            E::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "混み合っています。しばらくしてからやり直してください。".into(),
                "The service is busy; retry shortly.".into(),
            ),
            E::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "内部エラーが発生しました。".into(),
                "Something went wrong on our side.".into(),
            ),
        };
        let message = match lang {
            Ja => ja,
            En => en,
        };
        (status, code, message)
    }

    fn field_problems(&self) -> &[FieldProblem] {
        match self {
            ApiError::BadRequest(p) | ApiError::Validation(p) | ApiError::PasswordRejected(p) => p,
            _ => &[],
        }
    }

    /// Renders the problem document.
    pub fn render(&self, lang: Language, instance: &str) -> Response {
        let (status, code, detail) = self.describe(lang);
        let fields = self.field_problems();
        let doc = ProblemDocument {
            kind: format!("urn:rollcall:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail,
            instance,
            errors: fields
                .iter()
                .map(|f| FieldMessage {
                    field: &f.field,
                    code: f.code,
                    message: f.message(lang),
                })
                .collect(),
        };
        let body = serde_json::to_string(&doc).unwrap_or_else(|_| String::from("{}"));
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(lang.as_str()),
        );
        match self {
            ApiError::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rollcall\""),
                );
            }
            ApiError::Busy => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyResends(seconds) | ApiError::TooManyResets(seconds) => {
                if let Ok(v) = HeaderValue::from_str(&seconds.max(&1).to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// The RFC 9457 document, members in the RFC's order.
#[derive(Serialize)]
struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: String,
    instance: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldMessage<'a>>,
}

#[derive(Serialize)]
struct FieldMessage<'a> {
    field: &'a str,
    code: &'static str,
    message: &'a str,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::UserNotFound,
            StoreError::TenantNotFound => ApiError::TenantNotFound,
            StoreError::VersionConflict => ApiError::PreconditionFailed,
            StoreError::EmailTaken => ApiError::EmailTaken,
            StoreError::LoginIdTaken => ApiError::LoginIdTaken,
            StoreError::ImportInProgress => ApiError::ImportInProgress,
            StoreError::LastAdmin => ApiError::LastAdmin,
            StoreError::SeatLimitReached { limit } => ApiError::SeatLimitReached(limit),
            StoreError::IdempotencyKeyUsed => ApiError::IdempotencyKeyReused,
            StoreError::Contention => ApiError::Busy,
            StoreError::TokenUsed => ApiError::InvitationUsed,
            // The invitation moved on between read and write (a concurrent resend or send).
            StoreError::InvitationChanged => ApiError::Busy,
            e @ StoreError::Aws {
                retryable: true, ..
            } => {
                tracing::warn!(error = %e, "store busy");
                ApiError::Busy
            }
            e @ (StoreError::TenantExists
            | StoreError::ImportLockLost
            | StoreError::AlreadyWritten
            | StoreError::KeysChanged
            | StoreError::GrantRevoked
            | StoreError::Corrupt(_)
            | StoreError::Aws { .. }) => ApiError::internal(e),
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        ApiError::InvalidTransition(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.describe(Language::En);
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = status;
        resp.extensions_mut().insert(self);
        resp
    }
}

/// The language of the request: from `Accept-Language`, else English.
pub fn request_language(headers: &axum::http::HeaderMap) -> Language {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Language::from_accept_language)
        .unwrap_or(Language::En)
}

/// The request path as a problem's `instance`, with an invitation token replaced by
/// `{token}`: the secret should not travel on in error documents that clients log.
fn instance_path(path: &str) -> String {
    match path.strip_prefix("/invitations/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, tail)) => format!("/invitations/{{token}}/{tail}"),
            None => "/invitations/{token}".to_owned(),
        },
        None => path.to_owned(),
    }
}

/// Middleware: renders any [`ApiError`] parked in a response as problem+json in the request's
/// language, and tags successful responses with their language too.
pub async fn localize(request: Request, next: Next) -> Response {
    let lang = request_language(request.headers());
    let path = instance_path(request.uri().path());
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        return error.render(lang, &path);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::instance_path;

    #[test]
    fn invitation_tokens_never_appear_in_a_problems_instance() {
        assert_eq!(instance_path("/invitations/abc"), "/invitations/{token}");
        assert_eq!(
            instance_path("/invitations/abc/accept"),
            "/invitations/{token}/accept"
        );
        assert_eq!(instance_path("/users/01J"), "/users/01J");
    }
}
