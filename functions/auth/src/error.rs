//! The provider's three ways of saying no:
//!
//! - [`OAuthError`]: the token and revocation endpoints' JSON error (RFC 6749 §5.2), also sent
//!   back to a client's redirect URI from the authorization endpoint (§4.1.2.1);
//! - [`BearerError`]: a refused access token at `userinfo` (RFC 6750 §3);
//! - [`PageError`]: a page for the person at the browser when there is no safe place to send
//!   them (an unknown client or an unregistered redirect URI is never redirected to).
//!
//! A failure of rollcall itself (the store, KMS) is logged with its cause chain and answered
//! with an opaque 500 or 503 (`temporarily_unavailable` where the protocol has it).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall::domain::Language;
use rollcall::store::StoreError;

use crate::keyring::KeyringError;
use crate::pages;

/// An error code of RFC 6749 §4.1.2.1 / §5.2, OIDC Core §3.1.2.6 or RFC 7009 §2.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// Missing or malformed parameter.
    InvalidRequest,
    /// Client authentication failed (401).
    InvalidClient,
    /// The code or refresh token is invalid, expired, spent or not this client's.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// A scope beyond what was granted (RFC 6749 §5.2).
    InvalidScope,
    /// A grant type rollcall does not support.
    UnsupportedGrantType,
    /// A response type rollcall does not support.
    UnsupportedResponseType,
    /// The user must sign in (`prompt=none` without a session).
    LoginRequired,
    /// The `request` parameter (OIDC Core §6) is not supported.
    RequestNotSupported,
    /// The `request_uri` parameter is not supported.
    RequestUriNotSupported,
    /// rollcall failed; retry later.
    TemporarilyUnavailable,
    /// rollcall failed.
    ServerError,
}

impl OAuthCode {
    /// The code as the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthCode::InvalidRequest => "invalid_request",
            OAuthCode::InvalidClient => "invalid_client",
            OAuthCode::InvalidGrant => "invalid_grant",
            OAuthCode::UnauthorizedClient => "unauthorized_client",
            OAuthCode::InvalidScope => "invalid_scope",
            OAuthCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthCode::UnsupportedResponseType => "unsupported_response_type",
            OAuthCode::LoginRequired => "login_required",
            OAuthCode::RequestNotSupported => "request_not_supported",
            OAuthCode::RequestUriNotSupported => "request_uri_not_supported",
            OAuthCode::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthCode::ServerError => "server_error",
        }
    }
}

/// An OAuth error with a description for the client's developer.
#[derive(Debug)]
pub struct OAuthError {
    /// The code.
    pub code: OAuthCode,
    /// `error_description`: what was wrong, naming the parameter.
    pub description: String,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(code: OAuthCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    /// A failure of rollcall's own: logged, and answered without detail.
    pub fn internal(e: impl Into<anyhow::Error>, retryable: bool) -> Self {
        let e = e.into();
        tracing::error!(error = ?e, retryable, "sign-in request failed");
        if retryable {
            OAuthError::new(OAuthCode::TemporarilyUnavailable, "try again shortly")
        } else {
            OAuthError::new(OAuthCode::ServerError, "the server failed")
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        let retryable = e.is_retryable();
        OAuthError::internal(e, retryable)
    }
}

impl From<KeyringError> for OAuthError {
    fn from(e: KeyringError) -> Self {
        let retryable = e.is_retryable();
        OAuthError::internal(e, retryable)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            OAuthCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        });
        let mut resp = (status, Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.code == OAuthCode::InvalidClient {
            // RFC 6749 §5.2: a 401 names the scheme the client should have used.
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"rollcall\""),
            );
        }
        resp
    }
}

/// A refused bearer token (RFC 6750 §3.1).
#[derive(Debug)]
pub enum BearerError {
    /// No token was sent.
    Missing,
    /// The token is invalid, expired, revoked or another issuer's.
    InvalidToken,
    /// rollcall failed.
    Internal(OAuthError),
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let challenge = match self {
            BearerError::Missing => "Bearer realm=\"rollcall\"",
            BearerError::InvalidToken => {
                "Bearer realm=\"rollcall\", error=\"invalid_token\", error_description=\"the access token is invalid, expired or revoked\""
            }
            BearerError::Internal(e) => return e.into_response(),
        };
        let mut resp = StatusCode::UNAUTHORIZED.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl From<StoreError> for BearerError {
    fn from(e: StoreError) -> Self {
        BearerError::Internal(e.into())
    }
}

impl From<KeyringError> for BearerError {
    fn from(e: KeyringError) -> Self {
        BearerError::Internal(e.into())
    }
}

/// Why the authorization endpoint shows a page instead of redirecting.
#[derive(Debug)]
pub enum PageError {
    /// No such tenant or route.
    NotFound,
    /// `client_id` is missing or names no client of this tenant.
    UnknownClient,
    /// `redirect_uri` is missing or not one the client registered.
    RedirectUriMismatch,
    /// The sign-in form came without a valid CSRF token (an old or forged form).
    FormExpired,
    /// The form's body could not be read.
    BadForm,
    /// An `id_token_hint` that this issuer did not sign, or that names another client.
    BadHint,
    /// rollcall failed.
    Internal {
        /// Whether a retry may help.
        retryable: bool,
    },
}

impl PageError {
    /// A failure of rollcall's own, logged.
    pub fn internal(e: impl Into<anyhow::Error>, retryable: bool) -> Self {
        let e = e.into();
        tracing::error!(error = ?e, retryable, "sign-in page failed");
        PageError::Internal { retryable }
    }

    /// The page in `lang`.
    pub fn render(&self, lang: Language) -> Response {
        let (status, title, body) = match (self, lang) {
            (PageError::NotFound, Language::Ja) => (
                StatusCode::NOT_FOUND,
                "ページが見つかりません",
                "URLをご確認ください。",
            ),
            (PageError::NotFound, Language::En) => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "Check the address.",
            ),
            (PageError::UnknownClient, Language::Ja) => (
                StatusCode::BAD_REQUEST,
                "サインインを始められません",
                "このアプリケーションは登録されていません(client_id が不明です)。アプリケーションの管理者にお問い合わせください。",
            ),
            (PageError::UnknownClient, Language::En) => (
                StatusCode::BAD_REQUEST,
                "Sign-in can't start",
                "This application is not registered (unknown client_id). Contact the application's administrator.",
            ),
            (PageError::RedirectUriMismatch, Language::Ja) => (
                StatusCode::BAD_REQUEST,
                "サインインを始められません",
                "戻り先のURL(redirect_uri)がこのアプリケーションに登録されていません。アプリケーションの管理者にお問い合わせください。",
            ),
            (PageError::RedirectUriMismatch, Language::En) => (
                StatusCode::BAD_REQUEST,
                "Sign-in can't start",
                "The return address (redirect_uri) is not registered for this application. Contact the application's administrator.",
            ),
            (PageError::FormExpired, Language::Ja) => (
                StatusCode::BAD_REQUEST,
                "フォームの有効期限が切れました",
                "アプリケーションに戻って、もう一度サインインしてください。",
            ),
            (PageError::FormExpired, Language::En) => (
                StatusCode::BAD_REQUEST,
                "The form has expired",
                "Go back to the application and sign in again.",
            ),
            (PageError::BadHint, Language::Ja) => (
                StatusCode::BAD_REQUEST,
                "サインアウトできません",
                "アプリケーションから渡された情報(id_token_hint)が正しくありません。アプリケーションに戻ってもう一度お試しください。",
            ),
            (PageError::BadHint, Language::En) => (
                StatusCode::BAD_REQUEST,
                "Sign-out can't proceed",
                "The application sent an invalid id_token_hint. Go back to the application and try again.",
            ),
            (PageError::BadForm, Language::Ja) => (
                StatusCode::BAD_REQUEST,
                "送信内容を読み取れません",
                "アプリケーションに戻って、もう一度サインインしてください。",
            ),
            (PageError::BadForm, Language::En) => (
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                "Go back to the application and sign in again.",
            ),
            (PageError::Internal { retryable }, Language::Ja) => (
                if *retryable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
                "エラーが発生しました",
                "しばらくしてからもう一度お試しください。",
            ),
            (PageError::Internal { retryable }, Language::En) => (
                if *retryable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
                "Something went wrong",
                "Please try again in a little while.",
            ),
        };
        pages::message_page(status, lang, title, body)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.render(Language::En)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TenantNotFound => PageError::NotFound,
            e => {
                let retryable = e.is_retryable();
                PageError::internal(e, retryable)
            }
        }
    }
}

impl From<KeyringError> for PageError {
    fn from(e: KeyringError) -> Self {
        let retryable = e.is_retryable();
        PageError::internal(e, retryable)
    }
}
