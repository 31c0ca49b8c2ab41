//! The pages a person uses for their own account, besides signing in, and what they share:
//!
//! - the invitation and reset pages ([`crate::links`]): set a password through a mailed link;
//! - the forgot-password page ([`crate::forgot`]): ask for a reset mail;
//! - the account page (here): change the password while signed in.
//!
//! Every form carries the double-submit CSRF token ([`crate::session`]). Passwords are checked
//! against the tenant's policy by the server; the page lists each rule, ticks them as a person
//! types when scripts run, and lists every broken one after a refused submit when they don't.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use rollcall::account::{self, ChangePasswordError};
use rollcall::domain::{Language, Localized, PasswordPolicy, PasswordRule, SYMBOLS, Tenant, User};

use crate::authorize::{Params, current_session, language, set_session_cookie, start_session};
use crate::error::PageError;
use crate::pages::{self, Chrome, with_lang};
use crate::signin::SourceAddress;
use crate::{AuthState, discovery, session};

/// The words of the password pages.
pub struct PasswordText {
    /// The login id's label.
    pub login_label: &'static str,
    /// The current password's label (change).
    pub current_label: &'static str,
    /// The new password's label.
    pub new_label: &'static str,
    /// Its repetition's label.
    pub confirm_label: &'static str,
    /// Above the rules.
    pub rules_heading: &'static str,
    /// A rule met (read by screen readers).
    pub met: &'static str,
    /// A rule not met.
    pub unmet: &'static str,
    /// The two passwords differ.
    pub mismatch: &'static str,
    /// The button.
    pub submit: &'static str,
    /// The password broke rules.
    pub rejected: &'static str,
    /// The form's CSRF token did not match (an old tab, cookies off).
    pub form_expired: &'static str,
    /// Something changed meanwhile.
    pub busy: &'static str,
    /// The current password was wrong (or the account can't sign in now).
    pub current_wrong: &'static str,
}

impl PasswordText {
    /// The words in `lang`.
    pub fn of(lang: Language) -> &'static PasswordText {
        match lang {
            Language::Ja => &PasswordText {
                login_label: "ログインID",
                current_label: "現在のパスワード",
                new_label: "新しいパスワード",
                confirm_label: "新しいパスワード(確認)",
                rules_heading: "パスワードの条件:",
                met: "(満たしています)",
                unmet: "(満たしていません)",
                mismatch: "確認用のパスワードが一致しません。",
                submit: "パスワードを設定する",
                rejected: "パスワードが条件を満たしていません。満たしていない条件に ✗ が付いています。",
                form_expired: "フォームの有効期限が切れました。もう一度入力してください。",
                busy: "アカウントが同時に更新されました。もう一度お試しください。",
                current_wrong: "現在のパスワードが正しくないか、現在このアカウントではサインインできません。",
            },
            Language::En => &PasswordText {
                login_label: "Login ID",
                current_label: "Current password",
                new_label: "New password",
                confirm_label: "New password again",
                rules_heading: "The password must meet these rules:",
                met: "(met)",
                unmet: "(not met)",
                mismatch: "The two passwords are not the same.",
                submit: "Set password",
                rejected: "The password does not meet the rules marked ✗.",
                form_expired: "The form has expired. Please enter it again.",
                busy: "The account changed at the same time. Please try again.",
                current_wrong: "The current password is incorrect, or this account can't sign in now.",
            },
        }
    }
}

/// One rule as the page shows it.
pub struct RuleLine {
    code: &'static str,
    text: String,
    /// `""` (not checked yet), `met` or `broken`.
    state: &'static str,
    state_text: &'static str,
}

/// The policy's numbers for the script.
pub struct PolicyData {
    min: usize,
    max: usize,
    symbols: &'static str,
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    lang: &'a str,
    title: &'a str,
    tenant_name: Option<&'a str>,
    css_href: String,
    chrome: Chrome,
    t: &'static PasswordText,
    intro: &'a str,
    login_id: &'a str,
    error: Option<&'a str>,
    action: String,
    csrf: &'a str,
    policy: PolicyData,
    rules: Vec<RuleLine>,
    broken: Vec<PasswordRule>,
    mismatch: bool,
    ask_current: bool,
    current_wrong: bool,
    script: String,
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage<'a> {
    lang: &'a str,
    title: &'a str,
    tenant_name: Option<&'a str>,
    css_href: String,
    chrome: Chrome,
    body: &'a str,
    link: Option<(&'a str, String)>,
    /// Where the browser goes on by itself (a new navigation: a redirect from the form's POST
    /// would be held to the page's `form-action`, and the application's own sign-in redirects
    /// on to origins this page can't know).
    refresh: Option<String>,
}

/// What a password form is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Invitation,
    Reset,
    Change,
}

/// Everything a password page needs besides its state.
pub(crate) struct PasswordForm<'a> {
    pub(crate) tenant: &'a Tenant,
    pub(crate) user: &'a User,
    pub(crate) lang: Language,
    pub(crate) purpose: Purpose,
    /// The page's own path (the form posts to it; the language links point at it).
    pub(crate) path: String,
    pub(crate) csrf: &'a str,
    /// Whether cookies carry `Secure` and the `__Host-` prefix.
    pub(crate) secure: bool,
}

impl PasswordForm<'_> {
    pub(crate) fn render(
        &self,
        status: StatusCode,
        error: Option<&str>,
        broken: Vec<PasswordRule>,
        mismatch: bool,
        current_wrong: bool,
    ) -> Response {
        let t = PasswordText::of(self.lang);
        let (title, intro) = match (self.purpose, self.lang) {
            (Purpose::Invitation, Language::Ja) => (
                "パスワードの設定",
                "招待を受けるには、このアカウントのパスワードを設定してください。",
            ),
            (Purpose::Invitation, Language::En) => (
                "Set your password",
                "To accept the invitation, choose a password for this account.",
            ),
            (Purpose::Reset, Language::Ja) => (
                "パスワードの再設定",
                "新しいパスワードを設定してください。設定すると、ほかの端末ではサインアウトされます。",
            ),
            (Purpose::Reset, Language::En) => (
                "Choose a new password",
                "Choose a new password. Setting it signs you out everywhere else.",
            ),
            (Purpose::Change, Language::Ja) => (
                "パスワードの変更",
                "現在のパスワードと新しいパスワードを入力してください。変更すると、ほかの端末ではサインアウトされます。",
            ),
            (Purpose::Change, Language::En) => (
                "Change your password",
                "Enter your current password and a new one. Changing it signs you out everywhere else.",
            ),
        };
        let policy = &self.tenant.password_policy;
        let checked = !broken.is_empty();
        let rules = account::policy_rules(policy)
            .into_iter()
            .map(|r| {
                let is_broken = broken.iter().any(|b| b.code() == r.code());
                let (state, state_text) = match (checked, is_broken) {
                    (false, _) => ("", ""),
                    (true, true) => ("broken", t.unmet),
                    (true, false) => ("met", t.met),
                };
                RuleLine {
                    code: r.code(),
                    text: r.message(self.lang),
                    state,
                    state_text,
                }
            })
            .collect();
        let chrome = Chrome::of(self.tenant, self.lang, |l| with_lang(&self.path, l));
        let img = chrome.logo_origin.clone();
        let page = PasswordPage {
            lang: self.lang.as_str(),
            title,
            tenant_name: Some(self.tenant.name.as_str()),
            css_href: pages::SignInPage::css_for(self.tenant.id.as_str()),
            chrome,
            t,
            intro,
            login_id: self.user.profile.login_id.as_str(),
            error,
            action: self.path.clone(),
            csrf: self.csrf,
            policy: policy_data(policy),
            rules,
            broken,
            mismatch,
            ask_current: self.purpose == Purpose::Change,
            current_wrong,
            script: format!("/t/{}/assets/password.js", self.tenant.id),
        };
        let mut resp = pages::render_with(status, &page, None, img.as_deref());
        session::set_csrf(&mut resp, self.secure, self.csrf);
        resp
    }

    /// The page again with only `error` (nothing about the rules).
    pub(crate) fn refused(&self, status: StatusCode, error: &str) -> Response {
        self.render(status, Some(error), Vec::new(), false, false)
    }
}

fn policy_data(p: &PasswordPolicy) -> PolicyData {
    PolicyData {
        min: p.min_length.max(1),
        max: p.max_length,
        symbols: SYMBOLS,
    }
}

/// "Sign in", leading to the tenant's application, when it has one.
pub(crate) fn sign_in_link(tenant: &Tenant, lang: Language) -> Option<(&'static str, String)> {
    tenant.pages.app_url.clone().map(|u| {
        (
            match lang {
                Language::Ja => "サインインする",
                Language::En => "Sign in",
            },
            u,
        )
    })
}

/// A page that says one thing about the account, with an optional next step.
pub(crate) fn notice(
    tenant: &Tenant,
    lang: Language,
    path: &str,
    status: StatusCode,
    words: (&str, &str),
    link: Option<(&str, String)>,
) -> Response {
    notice_then(tenant, lang, path, status, words, link, None)
}

/// [`notice`], going on to `refresh` by itself.
pub(crate) fn notice_then(
    tenant: &Tenant,
    lang: Language,
    path: &str,
    status: StatusCode,
    (title, body): (&str, &str),
    link: Option<(&str, String)>,
    refresh: Option<String>,
) -> Response {
    let chrome = Chrome::of(tenant, lang, |l| with_lang(path, l));
    let img = chrome.logo_origin.clone();
    pages::render_with(
        status,
        &NoticePage {
            lang: lang.as_str(),
            title,
            tenant_name: Some(tenant.name.as_str()),
            css_href: pages::SignInPage::css_for(tenant.id.as_str()),
            chrome,
            body,
            link,
            refresh,
        },
        None,
        img.as_deref(),
    )
}

/// The language of an account page: `lang` in the query or form, the browser's, the user's,
/// the tenant's.
pub(crate) fn page_language(
    chosen: Option<&str>,
    headers: &HeaderMap,
    user: Option<&User>,
    tenant: &Tenant,
) -> Language {
    chosen
        .and_then(|l| l.parse::<Language>().ok())
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Language::from_accept_language)
        })
        .or(user.and_then(|u| u.profile.language))
        .unwrap_or(tenant.language)
}

/// The `lang` of a query string.
pub(crate) fn query_lang(query: &Option<String>) -> Option<String> {
    let q = query.as_deref()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v.into_owned())
}

/// `GET /t/{tenant}/account`: the signed-in person's account, with the change-password form.
pub async fn account_get(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(language(None, &headers, None)),
    };
    let chosen = query_lang(&query);
    let signed_in = match current_session(&state, &tenant, &headers).await {
        Ok(s) => s,
        Err(e) => return e.render(page_language(chosen.as_deref(), &headers, None, &tenant)),
    };
    let path = format!("/t/{}/account", tenant.id);
    let Some((_, user)) = signed_in else {
        return not_signed_in(
            &tenant,
            page_language(chosen.as_deref(), &headers, None, &tenant),
            &path,
        );
    };
    let lang = page_language(chosen.as_deref(), &headers, Some(&user), &tenant);
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let form = PasswordForm {
        tenant: &tenant,
        user: &user,
        lang,
        purpose: Purpose::Change,
        path,
        csrf: &csrf,
        secure: state.secure(),
    };
    form.render(StatusCode::OK, None, Vec::new(), false, false)
}

fn not_signed_in(tenant: &Tenant, lang: Language, path: &str) -> Response {
    let words = match lang {
        Language::Ja => (
            "サインインしていません",
            "アプリケーションからサインインしてから、もう一度開いてください。",
        ),
        Language::En => (
            "You are not signed in",
            "Sign in from your application, then open this page again.",
        ),
    };
    notice(
        tenant,
        lang,
        path,
        StatusCode::UNAUTHORIZED,
        words,
        sign_in_link(tenant, lang),
    )
}

/// `POST /t/{tenant}/account`: changes the password (current + new). Checking the current one
/// counts as a sign-in attempt (the same lockout and address bound); every other session ends,
/// this browser gets a fresh one.
pub async fn account_post(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    source: SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(language(None, &headers, None)),
    };
    let Ok(form) = Params::parse(&body) else {
        return PageError::BadForm.render(page_language(None, &headers, None, &tenant));
    };
    let path = format!("/t/{}/account", tenant.id);
    let signed_in = match current_session(&state, &tenant, &headers).await {
        Ok(s) => s,
        Err(e) => return e.render(page_language(form.get("lang"), &headers, None, &tenant)),
    };
    let Some((session_now, user)) = signed_in else {
        return not_signed_in(
            &tenant,
            page_language(form.get("lang"), &headers, None, &tenant),
            &path,
        );
    };
    let lang = page_language(form.get("lang"), &headers, Some(&user), &tenant);
    let t = PasswordText::of(lang);
    let csrf_cookie = session::read(&headers, &session::csrf_cookie(state.secure()));
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let page = PasswordForm {
        tenant: &tenant,
        user: &user,
        lang,
        purpose: Purpose::Change,
        path: path.clone(),
        csrf: &csrf,
        secure: state.secure(),
    };
    if !session::csrf_matches(csrf_cookie.as_deref(), form.get("csrf")) {
        return page.refused(StatusCode::BAD_REQUEST, t.form_expired);
    }
    let password = form.raw("password").unwrap_or("");
    let broken = tenant
        .password_policy
        .check(password, &user.profile.login_id)
        .err()
        .unwrap_or_default();
    let mismatch = form.raw("confirm").unwrap_or("") != password;
    if mismatch || !broken.is_empty() {
        let error = if mismatch { t.mismatch } else { t.rejected };
        return page.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(error),
            broken,
            mismatch,
            false,
        );
    }
    let now = state.store.clock().now();
    let current = form.raw("current").unwrap_or("");
    let changed = account::change_password(
        &state.store,
        &tenant,
        &user,
        current,
        password,
        source.0.as_deref(),
        now,
    )
    .await;
    let user = match changed {
        Ok(u) => u,
        Err(ChangePasswordError::CurrentRefused) => {
            return page.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(t.current_wrong),
                Vec::new(),
                false,
                true,
            );
        }
        Err(ChangePasswordError::Rejected(broken)) => {
            return page.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(t.rejected),
                broken,
                false,
                false,
            );
        }
        Err(ChangePasswordError::Busy) => return page.refused(StatusCode::CONFLICT, t.busy),
        Err(ChangePasswordError::Store(e)) => return PageError::from(e).render(lang),
        Err(e) => {
            let retryable = e.is_retryable();
            return PageError::internal(e, retryable).render(lang);
        }
    };
    // Sessions from `now` back are void; this browser's new one starts just after.
    let (secret, _) = match start_session(
        &state,
        &tenant,
        &user,
        session_now.amr.clone(),
        now + chrono::Duration::milliseconds(1),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return e.render(lang),
    };
    let words = match lang {
        Language::Ja => (
            "パスワードを変更しました",
            "ほかの端末ではサインアウトされました。この端末ではサインインしたままです。",
        ),
        Language::En => (
            "Your password was changed",
            "You were signed out everywhere else; you stay signed in here.",
        ),
    };
    let mut resp = notice(&tenant, lang, &path, StatusCode::OK, words, None);
    set_session_cookie(&mut resp, &state, &tenant, &secret);
    resp
}
