//! The pages behind mailed links: the invitation page (`/invitations/{token}`: set the first
//! password, then signed in) and the reset page (`/reset/{token}`: set a new one; every other
//! session ends).
//!
//! A link is only *used* by a POST: mail scanners and link previews open links (GET) before
//! people do. Expired, used and withdrawn links each get a page saying what to do next.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rollcall::account::{self, Link, SetPasswordError};
use rollcall::domain::{Language, MailKind, SecretToken, Tenant, TokenState, User};

use crate::account::{
    PasswordForm, PasswordText, Purpose, notice, notice_then, page_language, query_lang,
    sign_in_link,
};
use crate::authorize::{Params, language, set_session_cookie, start_session};
use crate::error::PageError;
use crate::pages::with_lang;
use crate::{AuthState, discovery, session};

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
    let app = sign_in_link(tenant, lang);
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
        secure: state.secure(),
    };
    form.render(StatusCode::OK, None, Vec::new(), false, false)
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
        secure: state.secure(),
    };
    let t = PasswordText::of(lang);
    if !session::csrf_matches(csrf_cookie.as_deref(), form.get("csrf")) {
        return page.refused(StatusCode::BAD_REQUEST, t.form_expired);
    }
    let password = form.raw("password").unwrap_or("");
    if form.raw("confirm").unwrap_or("") != password {
        // Check the rules too, so one round trip shows everything wrong.
        let broken = tenant
            .password_policy
            .check(password, &user.profile.login_id)
            .err()
            .unwrap_or_default();
        return page.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(t.mismatch),
            broken,
            true,
            false,
        );
    }
    match account::set_password(&state.store, &secret, &link, password).await {
        Ok(saved) => after_link(&state, &tenant, &saved, kind, lang, &path).await,
        Err(SetPasswordError::Rejected(broken)) => page.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(t.rejected),
            broken,
            false,
            false,
        ),
        Err(SetPasswordError::Link(now)) => dead_link(&tenant, lang, &path, kind, now),
        Err(SetPasswordError::Busy) => page.refused(StatusCode::CONFLICT, t.busy),
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
        let link = sign_in_link(tenant, lang);
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
