//! The forgot-password page (`/forgot`): asks for a reset mail, with one answer, status and
//! time whatever was typed (ASVS 5.0 §6.3.8).

use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rollcall::account;
use rollcall::domain::{InvitationTrigger, Language, Tenant};
use rollcall::store::StoreError;

use crate::account::{PasswordText, notice, page_language};
use crate::authorize::{Params, language};
use crate::error::PageError;
use crate::pages::{self, Chrome, with_lang};
use crate::signin::SourceAddress;
use crate::{AuthState, discovery, session};

/// Reset requests one source address (a /64 for IPv6) may make in any hour.
pub const RESETS_PER_ADDRESS_HOUR: u32 = 30;
/// The forgot-password form answers no sooner than this after it was posted, so the time it
/// takes says nothing about whether a mail went out (the work behind it takes far less).
pub const FORGOT_ANSWER_FLOOR: Duration = Duration::from_millis(400);

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
