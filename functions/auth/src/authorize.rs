//! The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2) and the sign-in form.
//!
//! The request is checked in the order that decides where an error may go (RFC 6749
//! §4.1.2.1): first the client and the redirect URI — if either is wrong, the person sees a
//! page and nothing is sent anywhere; after that, errors go back to the client's redirect URI
//! with `state` and `iss` (RFC 9207).
//!
//! The request is carried through the sign-in form in hidden fields and checked again, whole,
//! when the form comes back: nothing about it is trusted from the browser.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rollcall::domain::{Language, SecretToken, Tenant, User};
use rollcall::oidc::{Client, ClientId, CodeChallenge, Scopes};
use rollcall::store::{AuthCode, Session};

use crate::error::{OAuthCode, OAuthError, PageError};
use crate::pages::{self, SignInPage, SignInText};
use crate::{AuthState, discovery, second_step, session, signin};

/// The parameters of an authorization request that the sign-in form carries back.
pub const CARRIED: [&str; 9] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "ui_locales",
];

/// Parameters read once each: a repeated one is an error (RFC 6749 §3.1).
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Reads `application/x-www-form-urlencoded` text; `Err(name)` names a repeated parameter.
    pub fn parse(raw: &[u8]) -> Result<Params, String> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(k.into_owned());
            }
        }
        Ok(Params(map))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    /// A parameter as sent (empty included).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The carried authorization request as hidden fields of a form.
    pub fn carried(&self) -> Vec<(&'static str, String)> {
        CARRIED
            .iter()
            .filter_map(|name| self.get(name).map(|v| (*name, v.to_owned())))
            .collect()
    }
}

/// A checked authorization request.
#[derive(Debug)]
pub struct AuthRequest {
    /// The client.
    pub client: Client,
    /// The redirect URI as requested (it matched a registered one).
    pub redirect_uri: String,
    /// `state`, returned as sent.
    pub state: Option<String>,
    /// `nonce`, put in the ID token.
    pub nonce: Option<String>,
    /// The granted scopes.
    pub scopes: Scopes,
    /// The PKCE challenge.
    pub challenge: CodeChallenge,
    /// `prompt=login`: sign in again even with a session.
    pub prompt_login: bool,
    /// `prompt=none`: never show a page.
    pub prompt_none: bool,
    /// `max_age`: the longest time since the user last signed in.
    pub max_age: Option<i64>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// `ui_locales`, as sent.
    pub ui_locales: Option<String>,
}

/// Where a refused request goes.
#[derive(Debug)]
pub enum Refusal {
    /// A page: the client or redirect URI can't be trusted.
    Page(PageError),
    /// Back to the client.
    Redirect(Box<Redirect>),
}

/// An error sent back to the client's redirect URI.
#[derive(Debug)]
pub struct Redirect {
    redirect_uri: String,
    state: Option<String>,
    error: OAuthError,
}

impl From<PageError> for Refusal {
    fn from(e: PageError) -> Self {
        Refusal::Page(e)
    }
}

/// The response that sends the browser to `uri` with `params` added to its query (RFC 6749
/// §4.1.2: the redirect URI's own query is kept).
pub fn redirect_to(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return PageError::RedirectUriMismatch.into_response();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    pages::secure_headers(resp.headers_mut(), None);
    resp
}

fn origin_of(uri: &str) -> Option<String> {
    url::Url::parse(uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

impl Refusal {
    fn respond(self, state: &AuthState, tenant: &Tenant, lang: Language) -> Response {
        match self {
            Refusal::Page(p) => p.render(lang),
            Refusal::Redirect(r) => {
                let iss = state.issuer(&tenant.id);
                let mut params = vec![
                    ("error", r.error.code.as_str()),
                    ("error_description", r.error.description.as_str()),
                ];
                if let Some(s) = &r.state {
                    params.push(("state", s));
                }
                params.push(("iss", &iss));
                redirect_to(&r.redirect_uri, &params)
            }
        }
    }
}

/// Checks an authorization request of `tenant`.
pub async fn check(state: &AuthState, tenant: &Tenant, p: &Params) -> Result<AuthRequest, Refusal> {
    let client_id = p
        .get("client_id")
        .and_then(|c| ClientId::parse(c).ok())
        .ok_or(PageError::UnknownClient)?;
    let client = state
        .store
        .get_client(&tenant.id, &client_id)
        .await
        .map_err(PageError::from)?
        .ok_or(PageError::UnknownClient)?;
    // OIDC Core §3.1.2.1: redirect_uri is required, and must match exactly.
    let redirect_uri = p
        .get("redirect_uri")
        .filter(|r| client.redirect_uri(r).is_some())
        .ok_or(PageError::RedirectUriMismatch)?
        .to_owned();
    let back = |code: OAuthCode, description: &str| {
        Refusal::Redirect(Box::new(Redirect {
            redirect_uri: redirect_uri.clone(),
            state: p.get("state").map(str::to_owned),
            error: OAuthError::new(code, description),
        }))
    };
    if p.get("request").is_some() {
        return Err(back(
            OAuthCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if p.get("request_uri").is_some() {
        return Err(back(
            OAuthCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    match p.get("response_type") {
        Some("code") => {}
        None => return Err(back(OAuthCode::InvalidRequest, "response_type is required")),
        Some(_) => {
            return Err(back(
                OAuthCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows(rollcall::oidc::GrantType::AuthorizationCode) {
        return Err(back(
            OAuthCode::UnauthorizedClient,
            "the client may not use the authorization code grant",
        ));
    }
    if p.get("response_mode").is_some_and(|m| m != "query") {
        return Err(back(
            OAuthCode::InvalidRequest,
            "response_mode must be query",
        ));
    }
    let challenge = CodeChallenge::parse(p.get("code_challenge"), p.get("code_challenge_method"))
        .map_err(|e| back(OAuthCode::InvalidRequest, &e.to_string()))?;
    let prompts: Vec<&str> = p.get("prompt").unwrap_or("").split(' ').collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.iter().any(|v| !v.is_empty() && *v != "none") {
        // OIDC Core §3.1.2.1: none with any other value is an error.
        return Err(back(
            OAuthCode::InvalidRequest,
            "prompt=none can't be combined with other values",
        ));
    }
    let max_age = match p.get("max_age") {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            back(
                OAuthCode::InvalidRequest,
                "max_age must be a non-negative integer",
            )
        })?),
    };
    for (name, max) in [("state", 2048), ("nonce", 512), ("login_hint", 256)] {
        if p.get(name).is_some_and(|v| v.len() > max) {
            return Err(back(
                OAuthCode::InvalidRequest,
                &format!("{name} is longer than {max} bytes"),
            ));
        }
    }
    Ok(AuthRequest {
        scopes: Scopes::parse(p.get("scope").unwrap_or("")),
        state: p.get("state").map(str::to_owned),
        nonce: p.get("nonce").map(str::to_owned),
        challenge,
        prompt_login: prompts.contains(&"login"),
        prompt_none,
        max_age,
        login_hint: p.get("login_hint").map(str::to_owned),
        ui_locales: p.get("ui_locales").map(str::to_owned),
        client,
        redirect_uri,
    })
}

/// The page's language: `ui_locales`, then `Accept-Language`, then the tenant's.
pub fn language(
    ui_locales: Option<&str>,
    headers: &HeaderMap,
    tenant: Option<&Tenant>,
) -> Language {
    ui_locales
        .and_then(Language::from_ui_locales)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Language::from_accept_language)
        })
        .or(tenant.map(|t| t.language))
        .unwrap_or_default()
}

/// `GET /t/{tenant}/authorize`
pub async fn authorize_get(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    authorize(state, raw, query.unwrap_or_default().into_bytes(), headers).await
}

/// `POST /t/{tenant}/authorize` (OIDC Core §3.1.2.1: the endpoint takes POST too).
pub async fn authorize_post(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize(state, raw, body.to_vec(), headers).await
}

async fn authorize(state: AuthState, raw: String, params: Vec<u8>, headers: HeaderMap) -> Response {
    let fallback_lang = language(None, &headers, None);
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(fallback_lang),
    };
    let params = match Params::parse(&params) {
        Ok(p) => p,
        Err(_) => return PageError::BadForm.render(language(None, &headers, Some(&tenant))),
    };
    let lang = language(params.get("ui_locales"), &headers, Some(&tenant));
    let req = match check(&state, &tenant, &params).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state, &tenant, lang),
    };
    // A live session that satisfies the request signs the user in without a page.
    if !req.prompt_login {
        match current_session(&state, &tenant, &headers).await {
            Ok(Some((session, user)))
                if req.max_age.is_none_or(|m| {
                    (state.store.clock().now() - session.auth_time).num_seconds() <= m
                }) =>
            {
                return match issue_code(&state, &tenant, &req, &session, &user).await {
                    Ok(resp) => resp,
                    Err(e) => e.render(lang),
                };
            }
            Ok(_) => {}
            Err(e) => return e.render(lang),
        }
    }
    if req.prompt_none {
        return Refusal::Redirect(Box::new(Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: OAuthError::new(OAuthCode::LoginRequired, "the user must sign in"),
        }))
        .respond(&state, &tenant, lang);
    }
    let csrf = match session::csrf_for(&headers, state.secure()) {
        Ok(c) => c,
        Err(e) => return PageError::internal(e, true).render(lang),
    };
    let login = req.login_hint.clone().unwrap_or_default();
    let mut resp = sign_in_page(&tenant, &req, &params, lang, &csrf, &login, None);
    session::set_csrf(&mut resp, state.secure(), &csrf);
    resp
}

/// The session of the request's cookie at `tenant`, if it is live and its user may still sign
/// in.
pub async fn current_session(
    state: &AuthState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, PageError> {
    let Some(token) = session::read_token(
        headers,
        &session::session_cookie(state.secure(), &tenant.id),
    ) else {
        return Ok(None);
    };
    let Some(session) = state.store.session(&token.digest()).await? else {
        return Ok(None);
    };
    if session.tenant != tenant.id || !session.is_complete() {
        return Ok(None);
    }
    let found = state
        .store
        .caller_state(&tenant.id, &session.user_id, None)
        .await?;
    let Some(user) = found.user else {
        return Ok(None);
    };
    // Signed out everywhere (or the password changed) since this session began.
    if found.sign_in.revokes(session.auth_time) {
        return Ok(None);
    }
    if user
        .may_sign_in(state.store.clock().now(), tenant.billing_time_zone)
        .is_err()
    {
        return Ok(None);
    }
    Ok(Some((session, user)))
}

fn sign_in_page(
    tenant: &Tenant,
    req: &AuthRequest,
    params: &Params,
    lang: Language,
    csrf: &str,
    login: &str,
    error: Option<&str>,
) -> Response {
    let t = SignInText::of(lang);
    let hidden = params.carried();
    let issuer_path = format!("/t/{}", tenant.id);
    let authorize_in = |l: Language| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params.0 {
            if k != "ui_locales" {
                q.append_pair(k, v);
            }
        }
        q.append_pair("ui_locales", l.as_str());
        format!("{issuer_path}/authorize?{}", q.finish())
    };
    let chrome = pages::Chrome::of(tenant, lang, authorize_in);
    let img = chrome.logo_origin.clone();
    let forgot_href = format!(
        "{issuer_path}/forgot?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("lang", lang.as_str())
            .append_pair("continue", &authorize_in(lang))
            .finish()
    );
    let page = SignInPage {
        lang: lang.as_str(),
        t,
        title: t.heading,
        tenant_name: Some(tenant.name.as_str()),
        client_name: req.client.name.as_str(),
        action: format!("{issuer_path}/signin"),
        hidden,
        csrf,
        login,
        error,
        css_href: SignInPage::css_for(tenant.id.as_str()),
        chrome,
        forgot_href,
    };
    pages::render_with(
        StatusCode::OK,
        &page,
        origin_of(&req.redirect_uri).as_deref(),
        img.as_deref(),
    )
}

/// `POST /t/{tenant}/signin`: the sign-in form.
pub async fn signin(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    source: signin::SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fallback_lang = language(None, &headers, None);
    let tenant = match discovery::tenant(&state, &raw).await {
        Ok(t) => t,
        Err(e) => return e.render(fallback_lang),
    };
    let Ok(params) = Params::parse(&body) else {
        return PageError::BadForm.render(language(None, &headers, Some(&tenant)));
    };
    let lang = language(params.get("ui_locales"), &headers, Some(&tenant));
    let req = match check(&state, &tenant, &params).await {
        Ok(r) => r,
        Err(refusal) => return refusal.respond(&state, &tenant, lang),
    };
    let csrf_cookie = session::read(&headers, &session::csrf_cookie(state.secure()));
    if !session::csrf_matches(csrf_cookie.as_deref(), params.get("csrf")) {
        return PageError::FormExpired.render(lang);
    }
    let csrf = csrf_cookie.unwrap_or_default();
    let login = params.get("login").unwrap_or("");
    let password = params.get("password").unwrap_or("");
    let user = match signin::authenticate(&state.store, &tenant, login, password, &source).await {
        Ok(u) => u,
        Err(signin::SignInError::Refused) => {
            let t = SignInText::of(lang);
            return sign_in_page(&tenant, &req, &params, lang, &csrf, login, Some(t.failed));
        }
        Err(signin::SignInError::Store(e)) => return PageError::from(e).render(lang),
        Err(signin::SignInError::Hash(e)) => return PageError::internal(e, false).render(lang),
    };
    if tenant.sign_in.two_step.requires(&user) {
        return second_step::begin(&state, &tenant, &user, &params, lang, &csrf).await;
    }
    complete_sign_in(&state, &tenant, &req, &user, vec!["pwd".into()], lang).await
}

/// Starts a full session for `user` (authenticated by `amr`), mints a code and sends the
/// browser back to the client with it and the session cookie.
pub async fn complete_sign_in(
    state: &AuthState,
    tenant: &Tenant,
    req: &AuthRequest,
    user: &User,
    amr: Vec<String>,
    lang: Language,
) -> Response {
    let now = state.store.clock().now();
    let (secret, session) = match start_session(state, tenant, user, amr, now).await {
        Ok(s) => s,
        Err(e) => return e.render(lang),
    };
    let mut resp = match issue_code(state, tenant, req, &session, user).await {
        Ok(r) => r,
        Err(e) => return e.render(lang),
    };
    set_session_cookie(&mut resp, state, tenant, &secret);
    resp
}

/// Stores a new complete session for `user` that began at `at`.
pub async fn start_session(
    state: &AuthState,
    tenant: &Tenant,
    user: &User,
    amr: Vec<String>,
    at: DateTime<Utc>,
) -> Result<(SecretToken, Session), PageError> {
    let secret = SecretToken::mint().map_err(|e| PageError::internal(e, true))?;
    let session = Session {
        tenant: tenant.id.clone(),
        user_id: user.id,
        sid: ulid::Ulid::new().to_string(),
        auth_time: at,
        amr,
        expires_at: at + chrono::Duration::from_std(state.lifetimes.session).unwrap_or_default(),
        pending_code: None,
    };
    state.store.put_session(&secret.digest(), &session).await?;
    Ok((secret, session))
}

/// Sets the session cookie of `tenant` on `resp`.
pub fn set_session_cookie(
    resp: &mut Response,
    state: &AuthState,
    tenant: &Tenant,
    secret: &SecretToken,
) {
    session::set(
        resp.headers_mut(),
        state.secure(),
        &session::session_cookie(state.secure(), &tenant.id),
        secret.expose(),
        "Lax",
        Some(state.lifetimes.session.as_secs()),
    );
}

/// Mints a code for `user` and sends the browser back to the client with it (RFC 6749
/// §4.1.2), naming the issuer (RFC 9207).
async fn issue_code(
    state: &AuthState,
    tenant: &Tenant,
    req: &AuthRequest,
    session: &Session,
    user: &User,
) -> Result<Response, PageError> {
    let now: DateTime<Utc> = state.store.clock().now();
    let code = SecretToken::mint().map_err(|e| PageError::internal(e, true))?;
    let audience = if req.scopes.rollcall {
        state.public_base_url.to_string()
    } else {
        req.client.id.to_string()
    };
    let record = AuthCode {
        tenant: tenant.id.clone(),
        client_id: req.client.id,
        user_id: user.id,
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.challenge.clone(),
        nonce: req.nonce.clone(),
        scope: req.scopes.to_string(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        sid: session.sid.clone(),
        grant_id: ulid::Ulid::new().to_string(),
        audience,
        expires_at: now + chrono::Duration::from_std(state.lifetimes.code).unwrap_or_default(),
    };
    state.store.put_code(&code.digest(), &record).await?;
    let iss = state.issuer(&tenant.id);
    let mut params = vec![("code", code.expose())];
    if let Some(s) = &req.state {
        params.push(("state", s));
    }
    params.push(("iss", &iss));
    Ok(redirect_to(&req.redirect_uri, &params))
}
