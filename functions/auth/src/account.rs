//! The pages a person uses for their own account, besides signing in:
//!
//! - the invitation page (`/invitations/{token}`): the link in the invitation mail; set the first
//!   password, then signed in;
//! - the reset page (`/reset/{token}`): the link in a reset mail; set a new one, every other
//!   session ends;
//! - the forgot-password page (`/forgot`): asks for a reset mail, with one answer whatever was
//!   typed (ASVS 5.0 §6.3.8);
//! - the account page (`/account`): change the password while signed in.
//!
//! A link is only *used* by a POST: mail scanners and link previews open links (GET) before
//! people do. Every form carries the double-submit CSRF token ([`crate::session`]). Passwords
//! are checked against the tenant's policy by the server; the page lists each rule, ticks them
//! as a person types when scripts run, and lists every broken one after a refused submit when
//! they don't.

use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use rollcall::account::{self, Link, SetPasswordError};
use rollcall::domain::{
    InvitationTrigger, Language, Localized, MailKind, PasswordPolicy, PasswordRule, SYMBOLS,
    SecretToken, Tenant, TokenState, User,
};
use rollcall::store::StoreError;

use crate::authorize::{Params, current_session, language, set_session_cookie, start_session};
use crate::error::PageError;
use crate::pages::{self, Chrome, with_lang};
use crate::signin::SourceAddress;
use crate::{AuthState, discovery, session, signin};

/// Reset requests one source address (a /64 for IPv6) may make in any hour.
pub const RESETS_PER_ADDRESS_HOUR: u32 = 30;
/// The forgot-password form answers no sooner than this after it was posted, so the time it
/// takes says nothing about whether a mail went out (the work behind it takes far less).
pub const FORGOT_ANSWER_FLOOR: Duration = Duration::from_millis(400);

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

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    lang: &'a str,
    title: &'a str,
    tenant_name: Option<&'a str>,
    css_href: String,
    chrome: Chrome,
    intro: &'a str,
    error: Option<&'a str>,
    action: String,
    csrf: &'a str,
    hidden: Vec<(&'static str, String)>,
    login_label: &'a str,
    login: &'a str,
    submit: &'a str,
    back: Option<(&'a str, String)>,
}

/// What a password form is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Invitation,
    Reset,
    Change,
}

/// Everything a password page needs besides its state.
struct PasswordForm<'a> {
    tenant: &'a Tenant,
    user: &'a User,
    lang: Language,
    purpose: Purpose,
    /// The page's own path (the form posts to it; the language links point at it).
    path: String,
    csrf: &'a str,
}

impl PasswordForm<'_> {
    fn render(
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
        pages::render_with(status, &page, None, img.as_deref())
    }
}

fn policy_data(p: &PasswordPolicy) -> PolicyData {
    PolicyData {
        min: p.min_length.max(1),
        max: p.max_length,
        symbols: SYMBOLS,
    }
}

/// A page that says one thing about the account, with an optional next step.
fn notice(
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
fn notice_then(
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
fn page_language(
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
fn query_lang(query: &Option<String>) -> Option<String> {
    let q = query.as_deref()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v.into_owned())
}

/// A link of `kind` at `tenant`, read from its path. `Err`: the page to show instead.
async fn find_link(
    state: &AuthState,
    tenant: &Tenant,
    raw_token: &str,
    kind: MailKind,
    headers: &HeaderMap,
    chosen: Option<&str>,
    path: &str,
) -> Result<(SecretToken, Link), Response> {
    let unknown = |lang| {
        notice(
            tenant,
            lang,
            path,
            StatusCode::NOT_FOUND,
            match lang {
                Language::Ja => (
                    "リンクが見つかりません",
                    "メールのリンクを最後までコピーしたかご確認ください。新しいメールが届いている場合は、そのリンクをお使いください。",
                ),
                Language::En => (
                    "This link is not known",
                    "Check that the whole link from the mail was copied. If a newer mail came, use its link.",
                ),
            },
            None,
        )
    };
    let fallback = page_language(chosen, headers, None, tenant);
    let Ok(token) = SecretToken::parse(raw_token) else {
        return Err(unknown(fallback));
    };
    match Link::resolve(&state.store, &token).await {
        Ok(Some(link)) if link.kind == kind && link.tenant.id == tenant.id => Ok((token, link)),
        Ok(_) => Err(unknown(fallback)),
        Err(e) => Err(PageError::from(e).render(fallback)),
    }
}

/// The page for a link that can't set a password any more: what happened and what to do.
fn dead_link(
    tenant: &Tenant,
    lang: Language,
    path: &str,
    kind: MailKind,
    s: TokenState,
) -> Response {
    let forgot = (
        match lang {
            Language::Ja => "再設定のメールをもう一度送る",
            Language::En => "Send a new reset mail",
        },
        with_lang(&format!("/t/{}/forgot", tenant.id), lang),
    );
    let app = tenant.pages.app_url.clone().map(|u| {
        (
            match lang {
                Language::Ja => "サインインする",
                Language::En => "Sign in",
            },
            u,
        )
    });
    let (words, link) = match (kind, s, lang) {
        (MailKind::Invitation, TokenState::Expired, Language::Ja) => (
            (
                "招待の有効期限が切れています",
                "管理者に招待メールの再送を依頼してください。",
            ),
            None,
        ),
        (MailKind::Invitation, TokenState::Expired, Language::En) => (
            (
                "This invitation has expired",
                "Ask your administrator to send the invitation again.",
            ),
            None,
        ),
        (MailKind::Invitation, TokenState::Used, Language::Ja) => (
            (
                "この招待はすでに使われています",
                "設定したパスワードでサインインしてください。",
            ),
            app,
        ),
        (MailKind::Invitation, TokenState::Used, Language::En) => (
            (
                "This invitation was already used",
                "Sign in with the password you set.",
            ),
            app,
        ),
        (MailKind::Invitation, _, Language::Ja) => (
            (
                "この招待は取り消されました",
                "新しい招待メールが届いている場合は、そのリンクをお使いください。届いていない場合は、管理者に再送を依頼してください。",
            ),
            None,
        ),
        (MailKind::Invitation, _, Language::En) => (
            (
                "This invitation was withdrawn",
                "If a newer invitation came, use its link. Otherwise ask your administrator to send it again.",
            ),
            None,
        ),
        (_, TokenState::Expired, Language::Ja) => (
            (
                "リンクの有効期限が切れています",
                "パスワード再設定のリンクは1時間有効です。もう一度お手続きください。",
            ),
            Some(forgot),
        ),
        (_, TokenState::Expired, Language::En) => (
            (
                "This link has expired",
                "A password reset link works for one hour. Ask for a new one.",
            ),
            Some(forgot),
        ),
        (_, TokenState::Used, Language::Ja) => (
            (
                "このリンクはすでに使われています",
                "再設定したパスワードでサインインしてください。",
            ),
            app,
        ),
        (_, TokenState::Used, Language::En) => (
            (
                "This link was already used",
                "Sign in with the password you chose.",
            ),
            app,
        ),
        (_, _, Language::Ja) => (
            (
                "このリンクは使えません",
                "より新しいリンクが送られたか、パスワードが変更されました。必要なら、もう一度お手続きください。",
            ),
            Some(forgot),
        ),
        (_, _, Language::En) => (
            (
                "This link no longer works",
                "A newer link was sent, or the password was changed since. Ask for a new one if you need it.",
            ),
            Some(forgot),
        ),
    };
    notice(tenant, lang, path, StatusCode::GONE, words, link)
}

/// `GET /t/{tenant}/invitations/{token}`: the invitation page (never uses the link).
pub async fn invitation_get(
    State(state): State<AuthState>,
    Path((raw, token)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    link_get(state, raw, token, MailKind::Invitation, query, headers).await
}

/// `POST /t/{tenant}/invitations/{token}`: sets the first password, then signs the person in.
pub async fn invitation_post(
    State(state): State<AuthState>,
    Path((raw, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    link_post(state, raw, token, MailKind::Invitation, headers, body).await
}

/// `GET /t/{tenant}/reset/{token}`: the reset page (never uses the link).
pub async fn reset_get(
    State(state): State<AuthState>,
    Path((raw, token)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    link_get(state, raw, token, MailKind::Reset, query, headers).await
}

/// `POST /t/{tenant}/reset/{token}`: sets a new password; every session of the user ends.
pub async fn reset_post(
    State(state): State<AuthState>,
    Path((raw, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    link_post(state, raw, token, MailKind::Reset, headers, body).await
}

fn purpose_of(kind: MailKind) -> Purpose {
    match kind {
        MailKind::Reset => Purpose::Reset,
        MailKind::Invitation | MailKind::Code => Purpose::Invitation,
    }
}

fn link_path(tenant: &Tenant, kind: MailKind, token: &str) -> String {
    let page = match kind {
        MailKind::Reset => "reset",
        MailKind::Invitation | MailKind::Code => "invitations",
    };
    format!("/t/{}/{page}/{token}", tenant.id)
}

async fn link_get(
    state: AuthState,
    raw: String,
    token: String,
    kind: MailKind,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(language(None, &headers, None)),
    };
    let chosen = query_lang(&query);
    let path = link_path(&tenant, kind, &token);
    let (_, link) = match find_link(
        &state,
        &tenant,
        &token,
        kind,
        &headers,
        chosen.as_deref(),
        &path,
    )
    .await
    {
        Ok(l) => l,
        Err(page) => return page,
    };
    let lang = page_language(
        chosen.as_deref(),
        &headers,
        link.found.user.as_ref(),
        &tenant,
    );
    let Some(user) = link.user() else {
        return dead_link(&tenant, lang, &path, kind, link.state);
    };
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let form = PasswordForm {
        tenant: &tenant,
        user,
        lang,
        purpose: purpose_of(kind),
        path,
        csrf: &csrf,
    };
    let mut resp = form.render(StatusCode::OK, None, Vec::new(), false, false);
    session::set_csrf(&mut resp, state.secure(), &csrf);
    resp
}

async fn link_post(
    state: AuthState,
    raw: String,
    token: String,
    kind: MailKind,
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
    let path = link_path(&tenant, kind, &token);
    let (secret, link) = match find_link(
        &state,
        &tenant,
        &token,
        kind,
        &headers,
        form.get("lang"),
        &path,
    )
    .await
    {
        Ok(l) => l,
        Err(page) => return page,
    };
    let lang = page_language(
        form.get("lang"),
        &headers,
        link.found.user.as_ref(),
        &tenant,
    );
    let Some(user) = link.user().cloned() else {
        return dead_link(&tenant, lang, &path, kind, link.state);
    };
    let csrf_cookie = session::read(&headers, &session::csrf_cookie(state.secure()));
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let page = PasswordForm {
        tenant: &tenant,
        user: &user,
        lang,
        purpose: purpose_of(kind),
        path: path.clone(),
        csrf: &csrf,
    };
    let t = PasswordText::of(lang);
    let with_cookie = |mut resp: Response| {
        session::set_csrf(&mut resp, state.secure(), &csrf);
        resp
    };
    if !session::csrf_matches(csrf_cookie.as_deref(), form.get("csrf")) {
        return with_cookie(page.render(
            StatusCode::BAD_REQUEST,
            Some(t.form_expired),
            Vec::new(),
            false,
            false,
        ));
    }
    let password = form.raw("password").unwrap_or("");
    if form.raw("confirm").unwrap_or("") != password {
        // Check the rules too, so one round trip shows everything wrong.
        let broken = tenant
            .password_policy
            .check(password, &user.profile.login_id)
            .err()
            .unwrap_or_default();
        return with_cookie(page.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(t.mismatch),
            broken,
            true,
            false,
        ));
    }
    match account::set_password(&state.store, &secret, &link, password).await {
        Ok(saved) => after_link(&state, &tenant, &saved, kind, lang, &path).await,
        Err(SetPasswordError::Rejected(broken)) => with_cookie(page.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(t.rejected),
            broken,
            false,
            false,
        )),
        Err(SetPasswordError::Link(now)) => dead_link(&tenant, lang, &path, kind, now),
        Err(SetPasswordError::Busy) => {
            with_cookie(page.render(StatusCode::CONFLICT, Some(t.busy), Vec::new(), false, false))
        }
        Err(e) => {
            let retryable = e.is_retryable();
            PageError::internal(e, retryable).render(lang)
        }
    }
}

/// After a link set the password: an invitation signs the person in and sends them to the
/// tenant's application (or says they are done); a reset says to sign in with the new one.
async fn after_link(
    state: &AuthState,
    tenant: &Tenant,
    user: &User,
    kind: MailKind,
    lang: Language,
    path: &str,
) -> Response {
    if kind == MailKind::Reset {
        let link = tenant.pages.app_url.clone().map(|u| {
            (
                match lang {
                    Language::Ja => "サインインする",
                    Language::En => "Sign in",
                },
                u,
            )
        });
        let words = match lang {
            Language::Ja => (
                "パスワードを変更しました",
                "新しいパスワードでサインインしてください。ほかの端末ではサインアウトされました。",
            ),
            Language::En => (
                "Your password was changed",
                "Sign in with your new password. You were signed out everywhere else.",
            ),
        };
        return notice(tenant, lang, path, StatusCode::OK, words, link);
    }
    let now = state.store.clock().now();
    let (secret, _) = match start_session(state, tenant, user, vec!["pwd".into()], now).await {
        Ok(s) => s,
        Err(e) => return e.render(lang),
    };
    let words = match lang {
        Language::Ja => (
            "パスワードを設定しました",
            "アカウントの準備ができ、サインインしました。",
        ),
        Language::En => (
            "Your password is set",
            "Your account is ready and you are signed in.",
        ),
    };
    let mut resp = match &tenant.pages.app_url {
        Some(app) => {
            let go_on = (
                match lang {
                    Language::Ja => "アプリケーションへ進む",
                    Language::En => "Continue to the application",
                },
                app.clone(),
            );
            notice_then(
                tenant,
                lang,
                path,
                StatusCode::OK,
                words,
                Some(go_on),
                Some(app.clone()),
            )
        }
        None => {
            let account = (
                match lang {
                    Language::Ja => "アカウントを表示する",
                    Language::En => "Go to your account",
                },
                with_lang(&format!("/t/{}/account", tenant.id), lang),
            );
            notice(tenant, lang, path, StatusCode::OK, words, Some(account))
        }
    };
    set_session_cookie(&mut resp, state, tenant, &secret);
    resp
}

/// Where the forgot-password page leads back to: a sign-in page of this tenant (a relative
/// `/t/{tenant}/authorize?…` path), never anywhere else.
fn back_to_sign_in(tenant: &Tenant, raw: Option<&str>) -> Option<String> {
    let prefix = format!("/t/{}/authorize?", tenant.id);
    raw.filter(|r| r.starts_with(&prefix) && !r.contains(['\r', '\n', '\\']))
        .map(str::to_owned)
}

fn forgot_page(
    tenant: &Tenant,
    lang: Language,
    csrf: &str,
    back: Option<String>,
    login: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (title, intro, label, submit, back_label) = match lang {
        Language::Ja => (
            "パスワードを忘れた場合",
            "ログインIDまたはメールアドレスを入力してください。アカウントが見つかれば、登録されたメールアドレスにパスワード再設定のリンクを送ります。",
            "ログインID またはメールアドレス",
            "再設定のメールを送る",
            "サインインに戻る",
        ),
        Language::En => (
            "Forgot your password?",
            "Enter your login ID or email. If an account matches, we'll mail a link to set a new password to its address.",
            "Login ID or email",
            "Send the reset mail",
            "Back to sign in",
        ),
    };
    let mut path = format!("/t/{}/forgot", tenant.id);
    if let Some(b) = &back {
        path = format!(
            "{path}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("continue", b)
                .finish()
        );
    }
    let chrome = Chrome::of(tenant, lang, |l| with_lang(&path, l));
    let img = chrome.logo_origin.clone();
    let mut hidden = Vec::new();
    if let Some(b) = &back {
        hidden.push(("continue", b.clone()));
    }
    let page = ForgotPage {
        lang: lang.as_str(),
        title,
        tenant_name: Some(tenant.name.as_str()),
        css_href: pages::SignInPage::css_for(tenant.id.as_str()),
        chrome,
        intro,
        error,
        action: format!("/t/{}/forgot", tenant.id),
        csrf,
        hidden,
        login_label: label,
        login,
        submit,
        back: back.map(|b| (back_label, b)),
    };
    pages::render_with(status, &page, None, img.as_deref())
}

/// `GET /t/{tenant}/forgot`: asks for a login id or an email.
pub async fn forgot_get(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(language(None, &headers, None)),
    };
    let q = Params::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let lang = page_language(q.get("lang"), &headers, None, &tenant);
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let back = back_to_sign_in(&tenant, q.get("continue"));
    let mut resp = forgot_page(&tenant, lang, &csrf, back, "", None, StatusCode::OK);
    session::set_csrf(&mut resp, state.secure(), &csrf);
    resp
}

/// `POST /t/{tenant}/forgot`: queues a reset mail if an active account matches and neither it
/// nor the source address is over its hourly bound; answers the same, with the same status,
/// no sooner than [`FORGOT_ANSWER_FLOOR`], in every case.
pub async fn forgot_post(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    source: SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = tokio::time::Instant::now();
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(language(None, &headers, None)),
    };
    let Ok(form) = Params::parse(&body) else {
        return PageError::BadForm.render(page_language(None, &headers, None, &tenant));
    };
    let lang = page_language(form.get("lang"), &headers, None, &tenant);
    let back = back_to_sign_in(&tenant, form.get("continue"));
    let csrf_cookie = session::read(&headers, &session::csrf_cookie(state.secure()));
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let login = form.get("login").unwrap_or("").trim();
    if !session::csrf_matches(csrf_cookie.as_deref(), form.get("csrf")) || login.is_empty() {
        let error = match (login.is_empty(), lang) {
            (true, Language::Ja) => "ログインIDまたはメールアドレスを入力してください。",
            (true, Language::En) => "Enter your login ID or email.",
            (false, _) => PasswordText::of(lang).form_expired,
        };
        let mut resp = forgot_page(
            &tenant,
            lang,
            &csrf,
            back,
            login,
            Some(error),
            StatusCode::BAD_REQUEST,
        );
        session::set_csrf(&mut resp, state.secure(), &csrf);
        return resp;
    }
    if let Err(e) = request_reset(&state, &tenant, login, &source).await {
        return PageError::from(e).render(lang);
    }
    tokio::time::sleep_until(started + FORGOT_ANSWER_FLOOR).await;
    let words = match lang {
        Language::Ja => (
            "メールを確認してください",
            "入力された内容に一致するアカウントがあれば、登録されたメールアドレスにパスワード再設定のリンクを送りました。リンクは1時間有効です。届かない場合は、迷惑メールフォルダもご確認ください。",
        ),
        Language::En => (
            "Check your mail",
            "If an account matches what you entered, we sent a link to set a new password to its address. The link works for one hour. If nothing arrives, check your spam folder.",
        ),
    };
    let link = back.map(|b| {
        (
            match lang {
                Language::Ja => "サインインに戻る",
                Language::En => "Back to sign in",
            },
            b,
        )
    });
    notice(
        &tenant,
        lang,
        &format!("/t/{}/forgot", tenant.id),
        StatusCode::OK,
        words,
        link,
    )
}

/// Queues a reset mail for the account `login` names, if it is active and within its bounds.
/// Says nothing about which case it was: the caller answers the same either way.
async fn request_reset(
    state: &AuthState,
    tenant: &Tenant,
    login: &str,
    source: &SourceAddress,
) -> Result<(), StoreError> {
    let address = rollcall::oidc::throttle::address_bucket(source.0.as_deref());
    let from_address = state.store.count_address_event(&address, "RESET").await?;
    if from_address > RESETS_PER_ADDRESS_HOUR {
        tracing::info!("reset request over the address bound");
        return Ok(());
    }
    let lookup = state
        .store
        .find_for_sign_in(&tenant.id, login, &address)
        .await?;
    if let Some((user, _)) = lookup.found {
        let outcome = account::queue_reset(
            &state.store,
            &user,
            InvitationTrigger::PasswordForgotten,
            None,
        )
        .await?;
        tracing::info!(user_id = %user.id, outcome = ?outcome, "reset requested");
    }
    Ok(())
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
    };
    let mut resp = form.render(StatusCode::OK, None, Vec::new(), false, false);
    session::set_csrf(&mut resp, state.secure(), &csrf);
    resp
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
    let link = tenant.pages.app_url.clone().map(|u| {
        (
            match lang {
                Language::Ja => "サインインする",
                Language::En => "Sign in",
            },
            u,
        )
    });
    notice(tenant, lang, path, StatusCode::UNAUTHORIZED, words, link)
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
    };
    let with_cookie = |mut resp: Response| {
        session::set_csrf(&mut resp, state.secure(), &csrf);
        resp
    };
    if !session::csrf_matches(csrf_cookie.as_deref(), form.get("csrf")) {
        return with_cookie(page.render(
            StatusCode::BAD_REQUEST,
            Some(t.form_expired),
            Vec::new(),
            false,
            false,
        ));
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
        return with_cookie(page.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(error),
            broken,
            mismatch,
            false,
        ));
    }
    let current = form.raw("current").unwrap_or("");
    let checked = signin::authenticate(
        &state.store,
        &tenant,
        user.profile.login_id.as_str(),
        current,
        &source,
    )
    .await;
    let user = match checked {
        Ok(u) if u.id == user.id => u,
        Ok(_) | Err(signin::SignInError::Refused) => {
            return with_cookie(page.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(t.current_wrong),
                Vec::new(),
                false,
                true,
            ));
        }
        Err(signin::SignInError::Store(e)) => return PageError::from(e).render(lang),
        Err(signin::SignInError::Hash(e)) => return PageError::internal(e, false).render(lang),
    };
    let hash = match account::hash_new_password(&tenant.password_policy, &user, password).await {
        Ok(h) => h,
        Err(e) => {
            let retryable = e.is_retryable();
            return PageError::internal(e, retryable).render(lang);
        }
    };
    let mut after = user.clone();
    after.password_hash = Some(hash);
    after.has_password = true;
    let now = state.store.clock().now();
    match state.store.change_password(&user, after, now).await {
        Ok(_) => {}
        Err(StoreError::VersionConflict | StoreError::ImportInProgress) => {
            return with_cookie(page.render(
                StatusCode::CONFLICT,
                Some(t.busy),
                Vec::new(),
                false,
                false,
            ));
        }
        Err(e) => return PageError::from(e).render(lang),
    }
    tracing::info!(tenant_id = %tenant.id, user_id = %user.id, "password changed");
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
