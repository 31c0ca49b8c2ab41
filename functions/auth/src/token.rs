//! The token endpoint (RFC 6749 §3.2) and `userinfo` (OIDC Core §5.3).
//!
//! Client authentication (RFC 6749 §2.3): a public client names itself with `client_id` in the
//! body and has no secret; a confidential one uses HTTP Basic (`client_secret_basic`) and only
//! that. Every failure is an RFC 6749 §5.2 JSON error; none is a 5xx unless rollcall failed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rollcall::domain::{SecretToken, Tenant, TenantId, User};
use rollcall::oidc::tokens::{self, Expect};
use rollcall::oidc::{
    AccessClaims, AuthMethod, Client, ClientId, GrantType, IdClaims, Scopes, TokenKind,
};
use rollcall::store::{Family, Redeemed, RefreshRecord, Spend, StoreError};
use serde_json::json;

use crate::AuthState;
use crate::authorize::Params;
use crate::error::{BearerError, OAuthCode, OAuthError};

fn invalid_request(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthCode::InvalidRequest, description)
}

fn invalid_client() -> OAuthError {
    OAuthError::new(
        OAuthCode::InvalidClient,
        "client authentication failed (unknown client, wrong secret or wrong method)",
    )
}

fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthCode::InvalidGrant, description)
}

/// The tenant of a token request; an unknown one is `invalid_client` (there are no clients).
async fn tenant(state: &AuthState, raw: &str) -> Result<Tenant, OAuthError> {
    let id = TenantId::parse(raw).map_err(|_| invalid_client())?;
    match state.store.get_tenant(&id).await {
        Ok(t) => Ok(t),
        Err(StoreError::TenantNotFound) => Err(invalid_client()),
        Err(e) => Err(e.into()),
    }
}

/// Authenticates the client of a token request (RFC 6749 §2.3.1, §3.2.1).
pub async fn authenticate_client(
    state: &AuthState,
    tenant: &Tenant,
    headers: &HeaderMap,
    p: &Params,
) -> Result<Client, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let (id, secret) = match basic {
        Some(b64) => {
            if p.get("client_secret").is_some() {
                return Err(invalid_request(
                    "use one client authentication method, not two",
                ));
            }
            let decoded = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(invalid_client)?;
            let (id, secret) = decoded.split_once(':').ok_or_else(invalid_client)?;
            // RFC 6749 §2.3.1: both halves are form-urlencoded before encoding.
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            (
                decode(id).ok_or_else(invalid_client)?,
                Some(decode(secret).ok_or_else(invalid_client)?),
            )
        }
        None => {
            if p.get("client_secret").is_some() {
                // client_secret_post is not offered (discovery lists the methods).
                return Err(invalid_client());
            }
            let id = p
                .get("client_id")
                .ok_or_else(|| invalid_request("client_id is required"))?;
            (id.to_owned(), None)
        }
    };
    if let (Some(body_id), true) = (p.get("client_id"), secret.is_some())
        && body_id != id
    {
        return Err(invalid_request(
            "client_id differs from the authenticated client",
        ));
    }
    let id = ClientId::parse(&id).map_err(|_| invalid_client())?;
    let client = state
        .store
        .get_client(&tenant.id, &id)
        .await?
        .ok_or_else(invalid_client)?;
    match (client.auth_method, secret, &client.secret_digest) {
        (AuthMethod::None, None, _) => Ok(client),
        (AuthMethod::ClientSecretBasic, Some(secret), Some(digest)) => {
            let presented = SecretToken::parse(&secret).map_err(|_| invalid_client())?;
            // Digests of 256-bit secrets: comparing them leaks nothing usable, and it is done
            // in constant time all the same.
            let same = presented
                .digest()
                .as_str()
                .bytes()
                .zip(digest.as_str().bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same {
                Ok(client)
            } else {
                Err(invalid_client())
            }
        }
        _ => Err(invalid_client()),
    }
}

/// `POST /t/{tenant}/token`
pub async fn token(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(invalid_request(
            "the body must be application/x-www-form-urlencoded (RFC 6749 §3.2)",
        ));
    }
    let p = Params::parse(&body)
        .map_err(|name| invalid_request(format!("{name} is repeated (RFC 6749 §3.1)")))?;
    let tenant = tenant(&state, &raw).await?;
    let client = authenticate_client(&state, &tenant, &headers, &p).await?;
    let grant = match p.get("grant_type") {
        None => return Err(invalid_request("grant_type is required")),
        Some(g) => GrantType::parse(g).map_err(|_| {
            OAuthError::new(
                OAuthCode::UnsupportedGrantType,
                "grant_type must be authorization_code or refresh_token",
            )
        })?,
    };
    if !client.allows(grant) {
        return Err(OAuthError::new(
            OAuthCode::UnauthorizedClient,
            format!("the client may not use {}", grant.as_str()),
        ));
    }
    match grant {
        GrantType::AuthorizationCode => authorization_code(&state, &tenant, &client, &p).await,
        GrantType::RefreshToken => refresh(&state, &tenant, &client, &p).await,
    }
}

async fn authorization_code(
    state: &AuthState,
    tenant: &Tenant,
    client: &Client,
    p: &Params,
) -> Result<Response, OAuthError> {
    let code = p
        .get("code")
        .ok_or_else(|| invalid_request("code is required"))?;
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| invalid_request("redirect_uri is required"))?;
    let verifier = p
        .get("code_verifier")
        .ok_or_else(|| invalid_request("code_verifier is required (PKCE)"))?;
    let Ok(code) = SecretToken::parse(code) else {
        return Err(invalid_grant("the code is invalid, expired or used"));
    };
    let record = match state.store.redeem_code(&code.digest()).await? {
        Redeemed::Fresh(r) => r,
        Redeemed::Unknown => return Err(invalid_grant("the code is invalid, expired or used")),
        Redeemed::Replayed(r) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it issued.
            tracing::warn!(tenant_id = %r.tenant, client_id = %r.client_id, "an authorization code was replayed; revoking its grant");
            state.store.revoke_grant(&r.tenant, &r.grant_id).await?;
            return Err(invalid_grant("the code is invalid, expired or used"));
        }
    };
    if record.tenant != tenant.id || record.client_id != client.id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if record.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    record
        .code_challenge
        .verify(verifier)
        .map_err(|e| invalid_grant(e.to_string()))?;
    let found = state
        .store
        .caller_state(&tenant.id, &record.user_id, None)
        .await?;
    let Some(user) = found.user else {
        return Err(invalid_grant("the user no longer exists"));
    };
    let now = state.store.clock().now();
    if found.sign_in.revokes(record.auth_time)
        || user.may_sign_in(now, tenant.billing_time_zone).is_err()
    {
        return Err(invalid_grant("the user may not sign in now"));
    }
    let scopes = Scopes::parse(&record.scope);
    let grant = Grant {
        grant_id: record.grant_id.clone(),
        scope: record.scope.clone(),
        audience: record.audience.clone(),
        auth_time: record.auth_time,
        amr: record.amr.clone(),
        sid: record.sid.clone(),
        nonce: record.nonce.clone(),
    };
    // A refresh token only for offline_access (OIDC Core §11), and only to a client that may
    // use one.
    let refresh = if scopes.offline_access && client.allows(GrantType::RefreshToken) {
        let policy = tenant.sign_in;
        let absolute = now + chrono::Duration::days(i64::from(policy.refresh_absolute_days));
        let family = Family {
            tenant: tenant.id.clone(),
            grant_id: record.grant_id.clone(),
            user_id: user.id,
            client_id: client.id,
            scope: record.scope.clone(),
            audience: record.audience.clone(),
            auth_time: record.auth_time,
            amr: record.amr.clone(),
            sid: record.sid.clone(),
            created_at: now,
            absolute_expires_at: absolute,
            revoked_at: None,
        };
        let token = mint()?;
        let first = refresh_record(tenant, &record.grant_id, now, absolute);
        match state
            .store
            .start_family(&family, &token.digest(), &first)
            .await
        {
            Ok(()) => Some(token),
            Err(StoreError::GrantRevoked) => {
                return Err(invalid_grant("the code is invalid, expired or used"));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    issue(state, tenant, client, &user, &grant, refresh.as_ref()).await
}

fn mint() -> Result<SecretToken, OAuthError> {
    SecretToken::mint().map_err(|e| OAuthError::internal(e, true))
}

/// A refresh token issued at `now`: idle for the tenant's idle lifetime, never past the
/// family's absolute end.
fn refresh_record(
    tenant: &Tenant,
    grant_id: &str,
    now: DateTime<Utc>,
    absolute: DateTime<Utc>,
) -> RefreshRecord {
    let idle = now + chrono::Duration::days(i64::from(tenant.sign_in.refresh_idle_days));
    RefreshRecord {
        tenant: tenant.id.clone(),
        grant_id: grant_id.to_owned(),
        issued_at: now,
        idle_expires_at: idle.min(absolute),
        rotated_at: None,
        grace_used: false,
    }
}

/// The refresh grant (RFC 6749 §6), with rotation: every use returns a new refresh token and
/// spends the old one. A spent token presented again revokes its whole family (OAuth 2.0
/// Security BCP, RFC 9700 §4.14.2) — unless it is inside the tenant's grace period and its one
/// grace use is still free: two tabs refreshing with the same token at once both succeed.
async fn refresh(
    state: &AuthState,
    tenant: &Tenant,
    client: &Client,
    p: &Params,
) -> Result<Response, OAuthError> {
    let presented = p
        .get("refresh_token")
        .ok_or_else(|| invalid_request("refresh_token is required"))?;
    let invalid = || invalid_grant("the refresh token is invalid, expired or revoked");
    let token = SecretToken::parse(presented).map_err(|_| invalid())?;
    let digest = token.digest();
    // A concurrent use may spend the token between read and write: read again, once.
    for _ in 0..2 {
        let Some((record, family)) = state.store.refresh_token(&digest).await? else {
            return Err(invalid());
        };
        if record.tenant != tenant.id || family.client_id != client.id {
            return Err(invalid());
        }
        let now = state.store.clock().now();
        if family.revoked_at.is_some()
            || now >= family.absolute_expires_at
            || now >= record.idle_expires_at
        {
            return Err(invalid());
        }
        let grace = chrono::Duration::seconds(i64::from(tenant.sign_in.refresh_grace_seconds));
        let spend = match record.rotated_at {
            None => Spend::Rotate,
            Some(at) if !record.grace_used && now - at <= grace => Spend::Grace,
            Some(_) => {
                tracing::warn!(tenant_id = %tenant.id, client_id = %client.id, "a spent refresh token was presented again; revoking its family");
                state
                    .store
                    .revoke_grant(&tenant.id, &record.grant_id)
                    .await?;
                return Err(invalid());
            }
        };
        let scope = narrowed_scope(&family.scope, p.get("scope"))?;
        let found = state
            .store
            .caller_state(&tenant.id, &family.user_id, None)
            .await?;
        let Some(user) = found.user else {
            return Err(invalid());
        };
        if found.sign_in.revokes(family.created_at) {
            return Err(invalid());
        }
        if user.may_sign_in(now, tenant.billing_time_zone).is_err() {
            return Err(invalid_grant("the user may not sign in now"));
        }
        let next = mint()?;
        let next_record = refresh_record(tenant, &record.grant_id, now, family.absolute_expires_at);
        match state
            .store
            .rotate_refresh(&digest, &record, spend, &next.digest(), &next_record)
            .await
        {
            Ok(()) => {}
            Err(StoreError::TokenUsed) => continue,
            Err(StoreError::GrantRevoked) => return Err(invalid()),
            Err(e) => return Err(e.into()),
        }
        let grant = Grant {
            grant_id: family.grant_id.clone(),
            scope,
            audience: family.audience.clone(),
            auth_time: family.auth_time,
            amr: family.amr.clone(),
            sid: family.sid.clone(),
            nonce: None,
        };
        return issue(state, tenant, client, &user, &grant, Some(&next)).await;
    }
    Err(invalid())
}

/// The scope of a refreshed access token: the family's, or a subset the request names (RFC
/// 6749 §6: it may not add any).
fn narrowed_scope(granted: &str, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.to_owned());
    };
    let granted_set: Vec<&str> = granted.split(' ').collect();
    if let Some(extra) = requested
        .split(' ')
        .find(|s| !s.is_empty() && !granted_set.contains(s))
    {
        return Err(OAuthError::new(
            OAuthCode::InvalidScope,
            format!("scope {extra} was not granted"),
        ));
    }
    Ok(Scopes::parse(requested).to_string())
}

/// What issued tokens carry of their grant.
#[derive(Debug)]
struct Grant {
    grant_id: String,
    scope: String,
    audience: String,
    auth_time: DateTime<Utc>,
    amr: Vec<String>,
    sid: String,
    nonce: Option<String>,
}

/// The token response (RFC 6749 §5.1, OIDC Core §3.1.3.3, §12.2).
async fn issue(
    state: &AuthState,
    tenant: &Tenant,
    client: &Client,
    user: &User,
    grant: &Grant,
    refresh: Option<&SecretToken>,
) -> Result<Response, OAuthError> {
    let key = state.keys.signer().await?;
    let now = state.store.clock().now().timestamp();
    let ttl = i64::from(tenant.sign_in.access_token_minutes) * 60;
    let iss = state.issuer(&tenant.id);
    let scopes = Scopes::parse(&grant.scope);
    let access = AccessClaims {
        iss: iss.clone(),
        sub: user.id.to_string(),
        aud: grant.audience.clone(),
        exp: now + ttl,
        iat: now,
        jti: ulid::Ulid::new().to_string(),
        client_id: client.id.to_string(),
        scope: grant.scope.clone(),
        auth_time: grant.auth_time.timestamp(),
        tenant: tenant.id.to_string(),
        role: user.profile.role.as_str().to_owned(),
        grant_id: Some(grant.grant_id.clone()),
    };
    let access_token = tokens::sign(&key, TokenKind::Access, &access)
        .map_err(|e| OAuthError::internal(e, false))?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": grant.scope,
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r.expose());
    }
    if scopes.openid {
        let id = id_claims(&iss, tenant, user, client, grant, scopes, now, ttl);
        body["id_token"] = json!(
            tokens::sign(&key, TokenKind::Id, &id).map_err(|e| OAuthError::internal(e, false))?
        );
    }
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
fn id_claims(
    iss: &str,
    tenant: &Tenant,
    user: &User,
    client: &Client,
    grant: &Grant,
    scopes: Scopes,
    now: i64,
    ttl: i64,
) -> IdClaims {
    let mut id = IdClaims {
        iss: iss.to_owned(),
        sub: user.id.to_string(),
        aud: client.id.to_string(),
        exp: now + ttl,
        iat: now,
        auth_time: grant.auth_time.timestamp(),
        nonce: grant.nonce.clone(),
        amr: grant.amr.clone(),
        sid: Some(grant.sid.clone()),
        email: None,
        email_verified: None,
        name: None,
        preferred_username: None,
        locale: None,
        zoneinfo: None,
        tenant: tenant.id.to_string(),
    };
    release(&mut id, tenant, user, scopes);
    id
}

/// Fills the claims `scopes` release (OIDC Core §5.4).
fn release(id: &mut IdClaims, tenant: &Tenant, user: &User, scopes: Scopes) {
    if scopes.email {
        id.email = Some(user.profile.email.to_string());
        // The address received the invitation whose link the user followed to set a password.
        id.email_verified = Some(user.has_password);
    }
    if scopes.profile {
        id.name = Some(user.profile.name.to_string());
        id.preferred_username = Some(user.profile.login_id.to_string());
        id.locale = Some(
            user.profile
                .language
                .unwrap_or(tenant.language)
                .as_str()
                .to_owned(),
        );
        id.zoneinfo = Some(
            user.profile
                .time_zone
                .unwrap_or(tenant.billing_time_zone)
                .name()
                .to_owned(),
        );
    }
}

/// `GET|POST /t/{tenant}/userinfo` (OIDC Core §5.3): the claims of the access token's user, by
/// its scopes. Any access token this issuer signed is accepted, whatever its audience.
pub async fn userinfo(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, BearerError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(BearerError::Missing)?;
    let tenant_id = TenantId::parse(&raw).map_err(|_| BearerError::InvalidToken)?;
    let tenant = match state.store.get_tenant(&tenant_id).await {
        Ok(t) => t,
        Err(StoreError::TenantNotFound) => return Err(BearerError::InvalidToken),
        Err(e) => return Err(e.into()),
    };
    let keys = state
        .verifying_keys(bearer.trim())
        .await
        .map_err(|e| BearerError::Internal(OAuthError::internal(e, true)))?;
    let iss = state.issuer(&tenant.id);
    let claims = tokens::verify_access(
        bearer.trim(),
        &keys,
        Expect {
            issuer: &iss,
            audience: None,
            now: state.store.clock().now().timestamp(),
        },
    )
    .map_err(|_| BearerError::InvalidToken)?;
    let user_id = claims.sub.parse().map_err(|_| BearerError::InvalidToken)?;
    let user = match state.store.get_user(&tenant.id, &user_id).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => return Err(BearerError::InvalidToken),
        Err(e) => return Err(e.into()),
    };
    if user
        .may_sign_in(state.store.clock().now(), tenant.billing_time_zone)
        .is_err()
    {
        return Err(BearerError::InvalidToken);
    }
    let mut id = IdClaims {
        iss,
        sub: user.id.to_string(),
        aud: claims.client_id,
        exp: claims.exp,
        iat: claims.iat,
        auth_time: claims.auth_time,
        nonce: None,
        amr: Vec::new(),
        sid: None,
        email: None,
        email_verified: None,
        name: None,
        preferred_username: None,
        locale: None,
        zoneinfo: None,
        tenant: tenant.id.to_string(),
    };
    release(&mut id, &tenant, &user, Scopes::parse(&claims.scope));
    let mut body = serde_json::to_value(&id).unwrap_or_default();
    // userinfo is not a token: no iss/aud/exp/iat (OIDC Core §5.3.2 lists sub and the claims).
    if let Some(o) = body.as_object_mut() {
        for k in ["iss", "aud", "exp", "iat", "auth_time", "amr"] {
            o.remove(k);
        }
    }
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `POST /t/{tenant}/revoke` (RFC 7009): the client revokes one of its refresh tokens or access
/// tokens, and with it the whole grant. The answer is 200 whether or not the token was known
/// (§2.2): a client learns nothing about other clients' tokens.
pub async fn revoke(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let p = Params::parse(&body)
        .map_err(|name| invalid_request(format!("{name} is repeated (RFC 6749 §3.1)")))?;
    let tenant = tenant(&state, &raw).await?;
    let client = authenticate_client(&state, &tenant, &headers, &p).await?;
    let presented = p
        .get("token")
        .ok_or_else(|| invalid_request("token is required"))?;
    if let Ok(token) = SecretToken::parse(presented) {
        if let Some((record, family)) = state.store.refresh_token(&token.digest()).await?
            && record.tenant == tenant.id
            && family.client_id == client.id
        {
            state
                .store
                .revoke_grant(&tenant.id, &record.grant_id)
                .await?;
        }
    } else {
        let keys = state
            .verifying_keys(presented)
            .await
            .map_err(|e| OAuthError::internal(e, true))?;
        let iss = state.issuer(&tenant.id);
        let claims = tokens::verify_access_of_any_age(presented, &keys, &iss);
        if let Ok(claims) = claims
            && claims.client_id == client.id.to_string()
            && let Some(grant) = claims.grant_id
        {
            state.store.revoke_grant(&tenant.id, &grant).await?;
        }
    }
    let mut resp = axum::http::StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
