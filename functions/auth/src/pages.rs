//! The hosted pages: askama templates (HTML-escaped by construction) in Japanese and English,
//! sent with the headers every page carries: a `Content-Security-Policy` with no inline script
//! or style and `frame-ancestors 'none'`, `Cache-Control: no-store`, `Referrer-Policy:
//! no-referrer` (codes and tokens travel in URLs) and `X-Content-Type-Options: nosniff`.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rollcall::domain::Language;

/// The stylesheet, served from the provider's own origin (`style-src 'self'`).
pub const STYLESHEET: &str = include_str!("../assets/rollcall.css");

/// `GET /t/{tenant}/assets/rollcall.css`
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The stylesheet's path (the same for every tenant: relative to the pages' origin).
fn css_href(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("/t/{t}/assets/rollcall.css"),
        None => "/t/_/assets/rollcall.css".into(),
    }
}

/// The headers of every page. `form_action` lists origins, beyond the provider's own, that a
/// form on the page may end up at: browsers hold a redirect after a form post to `form-action`
/// too, and the sign-in form ends at the client's redirect URI.
pub fn secure_headers(headers: &mut HeaderMap, form_action: Option<&str>) {
    let form_action = match form_action {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".into(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Renders `page` with `status` and the page headers.
pub fn render(status: StatusCode, page: &impl Template, form_action: Option<&str>) -> Response {
    match page.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            secure_headers(resp.headers_mut(), form_action);
            resp
        }
        Err(e) => {
            tracing::error!(error = ?e, "a page template failed to render");
            let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            secure_headers(resp.headers_mut(), None);
            resp
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    lang: &'a str,
    title: &'a str,
    body: &'a str,
    tenant_name: Option<&'a str>,
    css_href: String,
}

/// A page saying one thing (an error, a result).
pub fn message_page(status: StatusCode, lang: Language, title: &str, body: &str) -> Response {
    render(
        status,
        &MessagePage {
            lang: lang.as_str(),
            title,
            body,
            tenant_name: None,
            css_href: css_href(None),
        },
        None,
    )
}

/// The sign-in page's words.
pub struct SignInText {
    /// `<h1>`.
    pub heading: &'static str,
    /// Before the client's name.
    pub to_continue: &'static str,
    /// The language links' label.
    pub language_label: &'static str,
    /// The login field.
    pub login_label: &'static str,
    /// The password field.
    pub password_label: &'static str,
    /// The button.
    pub submit: &'static str,
    /// The one answer to every failed sign-in (ASVS 5.0 §6.3: no hint which part was wrong).
    pub failed: &'static str,
}

impl SignInText {
    /// The words in `lang`.
    pub fn of(lang: Language) -> &'static SignInText {
        match lang {
            Language::Ja => &SignInText {
                heading: "サインイン",
                to_continue: "続行するアプリケーション:",
                language_label: "言語",
                login_label: "ログインID またはメールアドレス",
                password_label: "パスワード",
                submit: "サインイン",
                failed: "ログインID(メールアドレス)またはパスワードが正しくないか、現在このアカウントではサインインできません。",
            },
            Language::En => &SignInText {
                heading: "Sign in",
                to_continue: "to continue to",
                language_label: "Language",
                login_label: "Login ID or email",
                password_label: "Password",
                submit: "Sign in",
                failed: "The login ID (or email) or password is incorrect, or this account can't sign in now.",
            },
        }
    }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage<'a> {
    /// `ja` or `en`.
    pub lang: &'a str,
    /// The words.
    pub t: &'static SignInText,
    /// `<title>`.
    pub title: &'a str,
    /// The tenant's name.
    pub tenant_name: Option<&'a str>,
    /// The client's name.
    pub client_name: &'a str,
    /// The form's target.
    pub action: String,
    /// The authorization request, carried through the form.
    pub hidden: Vec<(&'static str, String)>,
    /// The CSRF token.
    pub csrf: &'a str,
    /// The login field's value (`login_hint`, or what was typed).
    pub login: &'a str,
    /// The failure message, if the last attempt failed.
    pub error: Option<&'a str>,
    /// The stylesheet.
    pub css_href: String,
    /// Links to this page in each language: (code, label, href, current).
    pub languages: Vec<(&'static str, &'static str, String, bool)>,
}

impl SignInPage<'_> {
    /// The stylesheet of `tenant`'s pages.
    pub fn css_for(tenant: &str) -> String {
        css_href(Some(tenant))
    }
}
