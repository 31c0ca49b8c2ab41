//! The second sign-in step: a 6-digit code mailed after the password (ASVS 5.0 §6.5–6.6).
//!
//! When the password is right and the user (or the tenant's policy) asks for two steps, no
//! session is started: a *pending* session remembers who passed the first step and which code
//! mail was queued (the same outbox → send-invitations → SES path as every account mail), and
//! the browser gets the code page. The code lives 10 minutes, is spent once, and dies after 5
//! wrong tries, all enforced by conditional writes on the code's outbox item; a new code may
//! be asked for once a minute, and it supersedes the older one. A right code starts a full
//! session with `amr: ["pwd", "otp"]` (RFC 8176), which the ID token carries.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Duration;
use rollcall::domain::{
    Invitation, InvitationStatus, InvitationTrigger, Language, MailKind, OneTimeCode, SecretToken,
    Tenant, User,
};
use rollcall::store::{CODE_TRIES, CodeOutcome, Session, StoreError};

use crate::authorize::{Params, check, complete_sign_in, language};
use crate::error::PageError;
use crate::pages::{self, Chrome};
use crate::{AuthState, discovery, session};

/// A new code may be asked for this long after the last.
pub const RESEND_AFTER_SECONDS: i64 = 60;
/// How long a pending session waits for its code.
pub const PENDING_MINUTES: i64 = 10;

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage<'a> {
    lang: &'a str,
    title: &'a str,
    tenant_name: Option<&'a str>,
    css_href: String,
    chrome: Chrome,
    intro: &'a str,
    error: Option<&'a str>,
    action: String,
    resend_action: String,
    csrf: &'a str,
    hidden: Vec<(&'static str, String)>,
    code_label: &'a str,
    submit: &'a str,
    resend: &'a str,
}

fn code_page(
    tenant: &Tenant,
    params: &Params,
    lang: Language,
    csrf: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (title, intro, label, submit, resend) = match lang {
        Language::Ja => (
            "確認コードの入力",
            "登録されたメールアドレスに6桁の確認コードを送りました。10分以内に入力してください。",
            "確認コード(6桁)",
            "確認する",
            "コードを再送する",
        ),
        Language::En => (
            "Enter the code",
            "We mailed a 6-digit code to your address. Enter it within 10 minutes.",
            "Code (6 digits)",
            "Continue",
            "Send a new code",
        ),
    };
    let base = format!("/t/{}", tenant.id);
    // The language links restart at the authorization request: the code step is a POST.
    let chrome = Chrome::of(tenant, lang, |l| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.carried() {
            if k != "ui_locales" {
                q.append_pair(k, &v);
            }
        }
        q.append_pair("ui_locales", l.as_str());
        format!("{base}/code?{}", q.finish())
    });
    let img = chrome.logo_origin.clone();
    // A right code ends in a redirect to the client: the form may end at its origin.
    let form_action = params
        .get("redirect_uri")
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization());
    let page = CodePage {
        lang: lang.as_str(),
        title,
        tenant_name: Some(tenant.name.as_str()),
        css_href: pages::SignInPage::css_for(tenant.id.as_str()),
        chrome,
        intro,
        error,
        action: format!("{base}/code"),
        resend_action: format!("{base}/code/resend"),
        csrf,
        hidden: params.carried(),
        code_label: label,
        submit,
        resend,
    };
    pages::render_with(status, &page, form_action.as_deref(), img.as_deref())
}

/// Queues a code mail for `user`, superseding older codes, and returns its id.
async fn queue_code(state: &AuthState, user: &User) -> Result<Invitation, StoreError> {
    let found = state.store.user_invitations(&user.tenant, &user.id).await?;
    let now = state.store.clock().now();
    let item = Invitation::new(user, InvitationTrigger::SignInCode, None, now);
    state
        .store
        .queue_account_mail(user, &found.unsuperseded_of(MailKind::Code), &item)
        .await?;
    Ok(item)
}

/// Stores a pending session waiting for `code` and sets its cookie on `resp`.
async fn pend(
    state: &AuthState,
    tenant: &Tenant,
    user: &User,
    code: &Invitation,
    resp: &mut Response,
) -> Result<(), PageError> {
    let now = state.store.clock().now();
    let secret = SecretToken::mint().map_err(|e| PageError::internal(e, true))?;
    let pending = Session {
        tenant: tenant.id.clone(),
        user_id: user.id,
        sid: ulid::Ulid::new().to_string(),
        auth_time: now,
        amr: vec!["pwd".into()],
        expires_at: now + Duration::minutes(PENDING_MINUTES),
        pending_code: Some(code.id),
    };
    state.store.put_session(&secret.digest(), &pending).await?;
    session::set(
        resp.headers_mut(),
        state.secure(),
        &session::pending_cookie(state.secure(), &tenant.id),
        secret.expose(),
        "Strict",
        Some(u64::try_from(PENDING_MINUTES * 60).unwrap_or(600)),
    );
    Ok(())
}

/// After a right password, when two steps are asked for: mails a code and shows its page.
pub async fn begin(
    state: &AuthState,
    tenant: &Tenant,
    user: &User,
    params: &Params,
    lang: Language,
    csrf: &str,
) -> Response {
    let code = match queue_code(state, user).await {
        Ok(c) => c,
        Err(e) => return PageError::from(e).render(lang),
    };
    tracing::info!(user_id = %user.id, "password accepted; code mail queued");
    let mut resp = code_page(tenant, params, lang, csrf, None, StatusCode::OK);
    if let Err(e) = pend(state, tenant, user, &code, &mut resp).await {
        return e.render(lang);
    }
    resp
}

/// The pending session of the request, its user and its code item, if all still stand.
async fn pending(
    state: &AuthState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<Option<(SecretToken, Session, User, Option<Invitation>)>, PageError> {
    let Some(secret) = session::read_token(
        headers,
        &session::pending_cookie(state.secure(), &tenant.id),
    ) else {
        return Ok(None);
    };
    let Some(s) = state.store.session(&secret.digest()).await? else {
        return Ok(None);
    };
    let Some(code_id) = s.pending_code.filter(|_| s.tenant == tenant.id) else {
        return Ok(None);
    };
    let found = state.store.user_invitations(&tenant.id, &s.user_id).await?;
    let Some(user) = found.user.clone() else {
        return Ok(None);
    };
    let now = state.store.clock().now();
    if user.may_sign_in(now, tenant.billing_time_zone).is_err()
        || found.sign_in.revokes(s.auth_time)
    {
        return Ok(None);
    }
    let code = found.find(&code_id).cloned();
    Ok(Some((secret, s, user, code)))
}

/// The words of the code page's errors.
fn words(lang: Language) -> [&'static str; 6] {
    match lang {
        Language::Ja => [
            "確認コードが正しくありません。",
            "確認コードを続けて間違えたため、このコードは使えなくなりました。「コードを再送する」を押してください。",
            "このコードは使えません(有効期限切れ、または新しいコードを送りました)。最新のメールのコードを入力するか、「コードを再送する」を押してください。",
            "6桁の数字を入力してください。",
            "コードを送信中です。メールが届いてから入力してください。",
            "新しいコードを送りました。",
        ],
        Language::En => [
            "The code is not right.",
            "Too many wrong codes: this code no longer works. Press \"Send a new code\".",
            "This code no longer works (it expired, or a newer one was sent). Enter the code in the newest mail, or press \"Send a new code\".",
            "Enter the 6 digits.",
            "The code is on its way. Enter it when the mail arrives.",
            "A new code was sent.",
        ],
    }
}

/// `POST /t/{tenant}/code`: checks the code; a right one completes the sign-in.
pub async fn code_post(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let CodeForm {
        tenant,
        params,
        lang,
        csrf,
        req,
        secret,
        user,
        code,
    } = match form(&state, &raw, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let w = words(lang);
    let again = |error: &str, status| code_page(&tenant, &params, lang, &csrf, Some(error), status);
    let Some(code) = code else {
        return again(w[2], StatusCode::GONE);
    };
    let Ok(typed) = OneTimeCode::parse(params.raw("code").unwrap_or("")) else {
        return again(w[3], StatusCode::UNPROCESSABLE_ENTITY);
    };
    if matches!(
        code.status,
        InvitationStatus::Pending | InvitationStatus::Sending
    ) {
        return again(w[4], StatusCode::CONFLICT);
    }
    let right = code.digest.as_ref().is_some_and(|stored| {
        session::csrf_matches(Some(stored.as_str()), Some(typed.digest(&code.id).as_str()))
    });
    match state.store.enter_code(&code, right).await {
        Ok(CodeOutcome::Accepted) => {
            if let Err(e) = state.store.delete_session(&secret.digest()).await {
                return PageError::from(e).render(lang);
            }
            tracing::info!(user_id = %user.id, "code accepted");
            let mut resp = complete_sign_in(
                &state,
                &tenant,
                &req,
                &user,
                vec!["pwd".into(), "otp".into()],
                lang,
            )
            .await;
            session::clear(
                resp.headers_mut(),
                state.secure(),
                &session::pending_cookie(state.secure(), &tenant.id),
            );
            resp
        }
        Ok(CodeOutcome::Wrong { left: 0 }) => again(w[1], StatusCode::UNPROCESSABLE_ENTITY),
        Ok(CodeOutcome::Wrong { left }) => {
            let text = match lang {
                Language::Ja => format!("{}あと{left}回入力できます。", w[0]),
                Language::En => format!("{} {left} tries left.", w[0]),
            };
            again(&text, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Ok(CodeOutcome::Gone) => {
            let dead = code.wrong_codes + 1 >= CODE_TRIES;
            again(if dead { w[1] } else { w[2] }, StatusCode::GONE)
        }
        Err(e) => PageError::from(e).render(lang),
    }
}

/// `POST /t/{tenant}/code/resend`: mails a new code (at most once a minute).
pub async fn resend_post(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let CodeForm {
        tenant,
        params,
        lang,
        csrf,
        secret,
        user,
        code: last,
        ..
    } = match form(&state, &raw, &headers, &body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let now = state.store.clock().now();
    if let Some(last) = &last {
        let wait = (last.created_at + Duration::seconds(RESEND_AFTER_SECONDS) - now).num_seconds();
        if wait > 0 {
            let text = match lang {
                Language::Ja => format!("新しいコードは{wait}秒後に送れます。"),
                Language::En => format!("You can ask for a new code in {wait} s."),
            };
            return code_page(
                &tenant,
                &params,
                lang,
                &csrf,
                Some(&text),
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
    }
    let code = match queue_code(&state, &user).await {
        Ok(c) => c,
        Err(e) => return PageError::from(e).render(lang),
    };
    if let Err(e) = state.store.delete_session(&secret.digest()).await {
        return PageError::from(e).render(lang);
    }
    let mut resp = code_page(
        &tenant,
        &params,
        lang,
        &csrf,
        Some(words(lang)[5]),
        StatusCode::OK,
    );
    if let Err(e) = pend(&state, &tenant, &user, &code, &mut resp).await {
        return e.render(lang);
    }
    resp
}

/// A code-page form as read and checked: the tenant, the form and its language, the CSRF
/// token, the authorization request it carries, and the pending session with its user and code.
struct CodeForm {
    tenant: Tenant,
    params: Params,
    lang: Language,
    csrf: String,
    req: crate::authorize::AuthRequest,
    secret: SecretToken,
    user: User,
    code: Option<Invitation>,
}

/// Reads and checks a code-page form; `Err` is the page to answer instead.
async fn form(
    state: &AuthState,
    raw: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<CodeForm, Response> {
    let tenant = discovery::tenant(state, raw)
        .await
        .map_err(|e| e.render(language(None, headers, None)))?;
    let params = Params::parse(body)
        .map_err(|_| PageError::BadForm.render(language(None, headers, Some(&tenant))))?;
    let lang = language(params.get("ui_locales"), headers, Some(&tenant));
    let csrf = session::read(headers, &session::csrf_cookie(state.secure()));
    if !session::csrf_matches(csrf.as_deref(), params.get("csrf")) {
        return Err(PageError::FormExpired.render(lang));
    }
    let req = check(state, &tenant, &params)
        .await
        .map_err(|_| PageError::BadForm.render(lang))?;
    let (secret, _, user, code) = match pending(state, &tenant, headers).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(PageError::FormExpired.render(lang)),
        Err(e) => return Err(e.render(lang)),
    };
    Ok(CodeForm {
        tenant,
        params,
        lang,
        csrf: csrf.unwrap_or_default(),
        req,
        secret,
        user,
        code,
    })
}

/// `GET /t/{tenant}/code?…`: the code page again (in another language), for the browser's
/// pending session; it mails nothing.
pub async fn code_get(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(language(None, &headers, None)),
    };
    let Ok(params) = Params::parse(query.unwrap_or_default().as_bytes()) else {
        return PageError::BadForm.render(language(None, &headers, Some(&tenant)));
    };
    let lang = language(params.get("ui_locales"), &headers, Some(&tenant));
    if check(&state, &tenant, &params).await.is_err() {
        return PageError::BadForm.render(lang);
    }
    match pending(&state, &tenant, &headers).await {
        Ok(Some(_)) => {}
        Ok(None) => return PageError::FormExpired.render(lang),
        Err(e) => return e.render(lang),
    }
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let mut resp = code_page(&tenant, &params, lang, &csrf, None, StatusCode::OK);
    session::set_csrf(&mut resp, state.secure(), &csrf);
    resp
}
