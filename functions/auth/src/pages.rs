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

/// The script that ticks the password rules as a person types (the pages work without it).
pub const PASSWORD_SCRIPT: &str = include_str!("../assets/password.js");

/// `GET /t/{tenant}/assets/password.js`
pub async fn password_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PASSWORD_SCRIPT,
    )
        .into_response()
}

/// `GET /t/{tenant}/assets/tenant.css`: the tenant's accent colour as a stylesheet, so no page
/// needs an inline style (`style-src 'self'`).
pub async fn tenant_stylesheet(
    axum::extract::State(state): axum::extract::State<crate::AuthState>,
    axum::extract::Path(raw): axum::extract::Path<String>,
) -> Response {
    let accent = match crate::discovery::tenant(&state, &raw).await {
        Ok(t) => t.pages.accent_colour,
        Err(e) => return e.into_response(),
    };
    let css = match accent {
        // Checked when set: `#rrggbb` only, so nothing can break out of the declaration.
        Some(c) if c.len() == 7 && c[1..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!(":root {{ --accent: {c}; }}\n")
        }
        _ => String::new(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        css,
    )
        .into_response()
}

/// What every account page shows around its form: the tenant's logo and name, its accent
/// colour, and links to the page in each language.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The tenant's name.
    pub tenant_name: String,
    /// The tenant's stylesheet, when it has an accent colour.
    pub tenant_css: Option<String>,
    /// The logo's URL.
    pub logo: Option<String>,
    /// The language links' label.
    pub language_label: &'static str,
    /// Links to this page in each language.
    pub languages: Vec<LanguageLink>,
    /// The origin the logo comes from (for `img-src`).
    pub logo_origin: Option<String>,
}

/// A link to the page in another language.
#[derive(Debug, Clone)]
pub struct LanguageLink {
    /// `ja` or `en`.
    pub code: &'static str,
    /// The language's name in itself.
    pub label: &'static str,
    /// The page in it.
    pub href: String,
    /// Whether the page is in it now.
    pub current: bool,
}

impl Chrome {
    /// The chrome of `tenant`'s pages in `lang`; `href(lang)` is this page in `lang`.
    pub fn of(
        tenant: &rollcall::domain::Tenant,
        lang: Language,
        href: impl Fn(Language) -> String,
    ) -> Chrome {
        let pages = &tenant.pages;
        Chrome {
            tenant_name: tenant.name.as_str().to_owned(),
            tenant_css: pages
                .accent_colour
                .as_ref()
                .map(|_| format!("/t/{}/assets/tenant.css", tenant.id)),
            logo: pages.logo_url.clone(),
            logo_origin: pages.logo_origin(),
            language_label: match lang {
                Language::Ja => "言語",
                Language::En => "Language",
            },
            languages: [(Language::Ja, "日本語"), (Language::En, "English")]
                .into_iter()
                .map(|(l, label)| LanguageLink {
                    code: l.as_str(),
                    label,
                    href: href(l),
                    current: l == lang,
                })
                .collect(),
        }
    }
}

/// `path` with `lang=` set to `lang` (other query parameters kept).
pub fn with_lang(path: &str, lang: Language) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "lang" {
            q.append_pair(&k, &v);
        }
    }
    q.append_pair("lang", lang.as_str());
    format!("{base}?{}", q.finish())
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
    secure_headers_with(headers, form_action, None);
}

/// [`secure_headers`], with images also allowed from `img_origin` (a tenant's logo).
pub fn secure_headers_with(
    headers: &mut HeaderMap,
    form_action: Option<&str>,
    img_origin: Option<&str>,
) {
    let form_action = match form_action {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".into(),
    };
    let img = match img_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".into(),
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; \
         form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
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
    render_with(status, page, form_action, None)
}

/// [`render`], with images also allowed from `img_origin`.
pub fn render_with(
    status: StatusCode,
    page: &impl Template,
    form_action: Option<&str>,
    img_origin: Option<&str>,
) -> Response {
    match page.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            secure_headers_with(resp.headers_mut(), form_action, img_origin);
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
    /// The link to the forgot-password page.
    pub forgot: &'static str,
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
                forgot: "パスワードを忘れた場合",
            },
            Language::En => &SignInText {
                heading: "Sign in",
                to_continue: "to continue to",
                language_label: "Language",
                login_label: "Login ID or email",
                password_label: "Password",
                submit: "Sign in",
                failed: "The login ID (or email) or password is incorrect, or this account can't sign in now.",
                forgot: "Forgot your password?",
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
    /// The tenant's logo, accent colour and the language links.
    pub chrome: Chrome,
    /// The forgot-password page, leading back here.
    pub forgot_href: String,
}

impl SignInPage<'_> {
    /// The stylesheet of `tenant`'s pages.
    pub fn css_for(tenant: &str) -> String {
        css_href(Some(tenant))
    }
}
