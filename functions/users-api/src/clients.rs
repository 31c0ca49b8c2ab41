//! `/clients`: the applications (OpenID Connect relying parties) that sign a tenant's users in
//! with rollcall. Admins only. The body and the answer use the client metadata names of RFC
//! 7591 §2 and §3.2.1 (`client_name`, `redirect_uris`, `post_logout_redirect_uris`,
//! `token_endpoint_auth_method`, `grant_types`, `client_id`, `client_secret`,
//! `client_id_issued_at`, `client_secret_expires_at`).
//!
//! A confidential client's secret is 256 random bits, shown once in the creation answer and
//! stored only as its SHA-256.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rollcall::domain::{DisplayName, SecretToken};
use rollcall::oidc::client::MAX_URIS;
use rollcall::oidc::{AuthMethod, Client, ClientId, GrantType, RedirectUri};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::input::{Fields, JsonObject, Patch};
use crate::problem::{ApiError, FieldProblem};

/// A client as shown (never its secret).
pub fn view(c: &Client) -> Value {
    json!({
        "client_id": c.id.to_string(),
        "client_name": c.name.as_str(),
        "redirect_uris": c.redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
        "post_logout_redirect_uris": c.post_logout_redirect_uris.iter().map(RedirectUri::as_str).collect::<Vec<_>>(),
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "client_id_issued_at": c.created_at.timestamp(),
        "created_at": c.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

fn uris(fields: &mut Fields, name: &str, required: bool) -> Vec<RedirectUri> {
    let raw = match fields.strings(name) {
        Patch::Value(v) => v,
        Patch::Absent | Patch::Null => Vec::new(),
    };
    if required && raw.is_empty() && !fields.problems.iter().any(|p| p.field == name) {
        fields.problem(FieldProblem::custom(
            name,
            "required",
            "1つ以上指定してください。",
            "At least one is required.",
        ));
    }
    if raw.len() > MAX_URIS {
        fields.problem(FieldProblem::custom(
            name,
            "too_many",
            &format!("{MAX_URIS}件以内で指定してください。"),
            &format!("At most {MAX_URIS} are allowed."),
        ));
    }
    let mut out = Vec::new();
    for (i, uri) in raw.iter().enumerate() {
        match RedirectUri::parse(uri) {
            Ok(u) if out.contains(&u) => fields.problem(FieldProblem::custom(
                format!("{name}[{i}]"),
                "duplicate",
                "同じURIが重複しています。",
                "The same URI appears twice.",
            )),
            Ok(u) => out.push(u),
            Err(e) => fields.problem(FieldProblem::new(format!("{name}[{i}]"), &e)),
        }
    }
    out
}

fn client_from(
    body: JsonObject,
    caller: &Caller,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Client, ApiError> {
    let mut fields = Fields::new(body.map);
    let raw_name = fields.required_string("client_name");
    let name = raw_name.and_then(|n| match DisplayName::parse(&n) {
        Ok(n) => Some(n),
        Err(e) => {
            fields.problem(FieldProblem::new("client_name", &e));
            None
        }
    });
    let redirect_uris = uris(&mut fields, "redirect_uris", true);
    let post_logout_redirect_uris = uris(&mut fields, "post_logout_redirect_uris", false);
    // RFC 7591 §2: client_secret_basic is the default method.
    let raw_method = fields.string("token_endpoint_auth_method");
    let auth_method =
        match fields.parse("token_endpoint_auth_method", raw_method, AuthMethod::parse) {
            Patch::Value(m) => m,
            Patch::Absent | Patch::Null => AuthMethod::ClientSecretBasic,
        };
    // RFC 7591 §2: authorization_code is the default grant.
    let grant_types = match fields.strings("grant_types") {
        Patch::Value(v) => {
            let mut out = Vec::new();
            for (i, g) in v.iter().enumerate() {
                match GrantType::parse(g) {
                    Ok(g) if !out.contains(&g) => out.push(g),
                    Ok(_) => {}
                    Err(e) => fields.problem(FieldProblem::new(format!("grant_types[{i}]"), &e)),
                }
            }
            if !out.contains(&GrantType::AuthorizationCode) {
                fields.problem(FieldProblem::custom(
                    "grant_types",
                    "authorization_code_required",
                    "authorization_code を含めてください(リフレッシュトークンはコードフローで発行されます)。",
                    "grant_types must include authorization_code (refresh tokens come from the code flow).",
                ));
            }
            out
        }
        Patch::Absent | Patch::Null => vec![GrantType::AuthorizationCode],
    };
    let problems = fields.finish();
    match name {
        Some(name) if problems.is_empty() => Ok(Client {
            id: ClientId::generate(),
            tenant: caller.tenant.clone(),
            name,
            redirect_uris,
            post_logout_redirect_uris,
            auth_method,
            grant_types,
            secret_digest: None,
            created_at: now,
        }),
        _ => Err(ApiError::Validation(problems)),
    }
}

/// `POST /clients`: registers a client; the answer shows its secret, once.
pub async fn create_client(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    let mut client = client_from(body, &caller, state.store.clock().now())?;
    let secret = match client.auth_method {
        AuthMethod::ClientSecretBasic => {
            let s = SecretToken::mint().map_err(ApiError::internal)?;
            client.secret_digest = Some(s.digest());
            Some(s)
        }
        AuthMethod::None => None,
    };
    state.store.put_client(&client).await?;
    let mut body = view(&client);
    if let Some(s) = secret {
        body["client_secret"] = json!(s.expose());
        // RFC 7591 §3.2.1: 0 means the secret does not expire.
        body["client_secret_expires_at"] = json!(0);
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /clients`
pub async fn list_clients(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    let clients = state.store.list_clients(&caller.tenant).await?;
    if clients.is_empty() {
        state.store.get_tenant(&caller.tenant).await?;
    }
    let items: Vec<Value> = clients.iter().map(view).collect();
    Ok(Json(json!({ "clients": items })).into_response())
}

fn client_id(raw: &str) -> Result<ClientId, ApiError> {
    ClientId::parse(raw).map_err(|_| ApiError::ClientNotFound)
}

/// `GET /clients/{client_id}`
pub async fn get_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    let client = state
        .store
        .get_client(&caller.tenant, &client_id(&raw)?)
        .await?
        .ok_or(ApiError::ClientNotFound)?;
    Ok(Json(view(&client)).into_response())
}

/// `DELETE /clients/{client_id}`: the client can't start sign-ins or redeem codes and refresh
/// tokens any more.
pub async fn delete_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    match state
        .store
        .delete_client(&caller.tenant, &client_id(&raw)?)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(rollcall::store::StoreError::NotFound) => Err(ApiError::ClientNotFound),
        Err(e) => Err(e.into()),
    }
}
