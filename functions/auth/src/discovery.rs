//! OpenID Connect Discovery 1.0 (§3, §4) and the JWK Set (RFC 7517 §5). One document per
//! tenant: the issuer is the tenant's, every endpoint sits under it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rollcall::domain::TenantId;
use rollcall::oidc::Scopes;
use serde_json::json;

use crate::AuthState;
use crate::error::PageError;

/// The tenant named in a path, which must exist.
pub async fn tenant(state: &AuthState, raw: &str) -> Result<rollcall::domain::Tenant, PageError> {
    let id = TenantId::parse(raw).map_err(|_| PageError::NotFound)?;
    Ok(state.store.get_tenant(&id).await?)
}

/// `GET /t/{tenant}/.well-known/openid-configuration`
pub async fn configuration(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let tenant = tenant(&state, &raw).await?;
    let iss = state.issuer(&tenant.id);
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks.json"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "end_session_endpoint": format!("{iss}/logout"),
        "scopes_supported": Scopes::SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid",
            "email", "email_verified", "name", "preferred_username", "locale", "zoneinfo",
            "tenant"
        ],
        "ui_locales_supported": ["ja", "en"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        // RFC 9207: the authorization response names its issuer (mix-up defence).
        "authorization_response_iss_parameter_supported": true,
    });
    Ok(cacheable(Json(doc).into_response()))
}

/// `GET /t/{tenant}/jwks.json`: the current and previous public keys.
pub async fn jwks(
    State(state): State<AuthState>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    tenant(&state, &raw).await?;
    let keys = state
        .published
        .for_kid(None)
        .await
        .map_err(|e| PageError::internal(e, true))?;
    Ok(cacheable(Json(keys.jwks()).into_response()))
}

/// Public documents may be cached briefly (a rotation shows within five minutes).
fn cacheable(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
