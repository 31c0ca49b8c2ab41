//! RP-Initiated Logout (OpenID Connect RP-Initiated Logout 1.0): `/t/{tenant}/logout` ends the
//! browser's session at the tenant and returns to the client's registered
//! `post_logout_redirect_uri` (§3: never to one it did not register).
//!
//! With a valid `id_token_hint` (§2: an ID token this issuer signed, possibly expired) the
//! client has shown it signed this browser in, and the session ends at once. Without one, the
//! person is asked first (§2: the OP should confirm), so a link on another site can't sign
//! anybody out.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rollcall::domain::{Language, SecretToken, Tenant};
use rollcall::oidc::tokens::{self, Expect};
use rollcall::oidc::{Client, ClientId};

use crate::authorize::{Params, language, redirect_to};
use crate::error::PageError;
use crate::pages::{self, SignInPage};
use crate::{AuthState, discovery, session};

#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage<'a> {
    lang: &'a str,
    title: &'a str,
    body: &'a str,
    button: &'a str,
    tenant_name: Option<&'a str>,
    css_href: String,
    action: String,
    hidden: Vec<(&'static str, String)>,
    csrf: &'a str,
}

/// The parameters the confirmation form carries back.
const CARRIED: [&str; 4] = [
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
];

/// `GET /t/{tenant}/logout`
pub async fn logout_get(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    logout(state, raw, query.unwrap_or_default().into_bytes(), headers).await
}

/// `POST /t/{tenant}/logout` (§2: the endpoint takes POST too; the confirmation posts here).
pub async fn logout_post(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    logout(state, raw, body.to_vec(), headers).await
}

async fn logout(state: AuthState, raw: String, params: Vec<u8>, headers: HeaderMap) -> Response {
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(language(None, &headers, None)),
    };
    let Ok(p) = Params::parse(&params) else {
        return PageError::BadForm.render(language(None, &headers, Some(&tenant)));
    };
    let lang = language(p.get("ui_locales"), &headers, Some(&tenant));
    match run(&state, &tenant, &p, &headers, lang).await {
        Ok(resp) => resp,
        Err(e) => e.render(lang),
    }
}

async fn run(
    state: &AuthState,
    tenant: &Tenant,
    p: &Params,
    headers: &HeaderMap,
    lang: Language,
) -> Result<Response, PageError> {
    let now = state.store.clock().now().timestamp();
    let iss = state.issuer(&tenant.id);
    let hinted = match p.get("id_token_hint") {
        None => None,
        Some(hint) => {
            let keys = state
                .verifying_keys(hint)
                .await
                .map_err(|e| PageError::internal(e, true))?;
            let claims = tokens::verify_id(
                hint,
                &keys,
                Expect {
                    issuer: &iss,
                    audience: None,
                    now,
                },
                true,
            )
            .map_err(|_| PageError::BadHint)?;
            Some(claims)
        }
    };
    let client_id = match (hinted.as_ref().map(|c| c.aud.as_str()), p.get("client_id")) {
        (Some(a), Some(b)) if a != b => return Err(PageError::BadHint),
        (a, b) => a.or(b),
    };
    let client: Option<Client> = match client_id {
        None => None,
        Some(id) => {
            let id = ClientId::parse(id).map_err(|_| PageError::UnknownClient)?;
            Some(
                state
                    .store
                    .get_client(&tenant.id, &id)
                    .await?
                    .ok_or(PageError::UnknownClient)?,
            )
        }
    };
    let back_to = match p.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let registered = client
                .as_ref()
                .is_some_and(|c| c.post_logout_redirect_uri(uri).is_some());
            if !registered {
                return Err(PageError::RedirectUriMismatch);
            }
            Some(uri.to_owned())
        }
    };
    let csrf_name = session::csrf_cookie(state.secure());
    let csrf_cookie = session::read(headers, &csrf_name);
    let confirmed = p.get("confirm") == Some("yes")
        && session::csrf_matches(csrf_cookie.as_deref(), p.get("csrf"));
    if hinted.is_none() && !confirmed {
        return confirm(state, tenant, p, lang, csrf_cookie);
    }
    // End the session at this tenant, whatever else the browser holds.
    let cookie = session::session_cookie(state.secure(), &tenant.id);
    if let Some(token) = session::read_token(headers, &cookie) {
        state.store.delete_session(&token.digest()).await?;
    }
    let mut resp = match back_to {
        Some(uri) => {
            let mut params = Vec::new();
            if let Some(s) = p.get("state") {
                params.push(("state", s));
            }
            redirect_to(&uri, &params)
        }
        None => {
            let (title, body) = match lang {
                Language::Ja => (
                    "サインアウトしました",
                    "このブラウザーのサインインを終了しました。",
                ),
                Language::En => ("Signed out", "You have signed out on this browser."),
            };
            pages::message_page(StatusCode::OK, lang, title, body)
        }
    };
    session::clear(resp.headers_mut(), state.secure(), &cookie);
    Ok(resp)
}

fn confirm(
    state: &AuthState,
    tenant: &Tenant,
    p: &Params,
    lang: Language,
    csrf_cookie: Option<String>,
) -> Result<Response, PageError> {
    let csrf = match csrf_cookie.filter(|c| SecretToken::parse(c).is_ok()) {
        Some(c) => c,
        None => SecretToken::mint()
            .map_err(|e| PageError::internal(e, true))?
            .expose()
            .to_owned(),
    };
    let (title, body, button) = match lang {
        Language::Ja => (
            "サインアウトしますか?",
            "このブラウザーでのサインインを終了します。",
            "サインアウト",
        ),
        Language::En => (
            "Sign out?",
            "This ends your sign-in on this browser.",
            "Sign out",
        ),
    };
    let page = ConfirmPage {
        lang: lang.as_str(),
        title,
        body,
        button,
        tenant_name: Some(tenant.name.as_str()),
        css_href: SignInPage::css_for(tenant.id.as_str()),
        action: format!("/t/{}/logout", tenant.id),
        hidden: CARRIED
            .iter()
            .filter_map(|n| p.get(n).map(|v| (*n, v.to_owned())))
            .collect(),
        csrf: &csrf,
    };
    let form_action = p
        .get("post_logout_redirect_uri")
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization());
    let mut resp = pages::render(StatusCode::OK, &page, form_action.as_deref());
    session::set(
        resp.headers_mut(),
        state.secure(),
        &session::csrf_cookie(state.secure()),
        &csrf,
        "Strict",
        None,
    );
    Ok(resp)
}
