//! # users-api
//!
//! rollcall's HTTP API: an axum [`Router`] that the Lambda runtime drives through `lambda_http`
//! (API Gateway HTTP API, payload v2) and that `rollcall dev` and the tests serve over plain
//! HTTP. Both call the very same router.
//!
//! Every route is declared once, in [`routes`]; the router is built from that table and a test
//! checks the table against the OpenAPI document served at `/openapi.json`.

pub mod auth;
pub mod billing;
pub mod clients;
pub mod imports;
pub mod input;
pub mod invitations;
pub mod problem;
pub mod sessions;
pub mod users;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use rollcall::config::{self, BucketConfig, ConfigError, StoreConfig};
use rollcall::files::Bucket;
use rollcall::store::{CursorSigner, Store};
use secrecy::{ExposeSecret, SecretString};

use crate::auth::{SharedVerifier, TokenVerifier};
use crate::problem::ApiError;

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Everything the handlers share: built once per process, cloned cheaply per request.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Verifies bearer tokens.
    pub verifier: SharedVerifier,
    /// Seals and opens list cursors.
    pub cursors: CursorSigner,
    /// Request limits.
    pub limits: Limits,
    /// The bucket of billing lists, imports, reports and exports, for presigned links.
    pub bucket: Bucket,
    /// The queue bulk-import reads, for `POST /imports/{id}/apply`.
    pub import_queue: Option<imports::ImportQueue>,
    /// Tokens rollcall's sign-in issued, when accepted.
    pub issued: Option<Arc<auth::IssuedTokens>>,
}

impl AppState {
    /// State for a router.
    pub fn new(
        store: Store,
        bucket: Bucket,
        verifier: TokenVerifier,
        cursor_key: SecretString,
        limits: Limits,
    ) -> Self {
        AppState {
            bucket,
            store,
            verifier: Arc::new(verifier),
            cursors: CursorSigner::new(cursor_key),
            limits,
            import_queue: None,
            issued: None,
        }
    }

    /// The same state, also accepting access tokens rollcall's sign-in issued for this API
    /// (audience `public_base_url`), verified against the store's published keys.
    pub fn accepting_issued_tokens(mut self, public_base_url: &str) -> Self {
        self.issued = Some(Arc::new(auth::IssuedTokens {
            base: public_base_url.trim_end_matches('/').to_owned(),
            keys: rollcall::oidc::PublishedKeys::new(self.store.clone()),
        }));
        self
    }

    /// The same state, sending apply requests to `queue`.
    pub fn with_import_queue(mut self, queue: imports::ImportQueue) -> Self {
        self.import_queue = Some(queue);
        self
    }
}

/// The function's configuration, read once from the environment.
#[derive(Debug)]
pub struct ApiConfig {
    /// Where the users are.
    pub store: StoreConfig,
    /// The bucket of billing lists and imports.
    pub bucket: BucketConfig,
    /// Token verification.
    pub verifier: TokenVerifier,
    /// The key that signs list cursors (`CURSOR_SECRET`, at least 32 characters).
    pub cursor_key: SecretString,
    /// Request limits (`MAX_BODY_BYTES`).
    pub limits: Limits,
    /// The queue bulk-import reads (`IMPORT_QUEUE_URL`), for apply requests.
    pub import_queue_url: String,
    /// `PUBLIC_BASE_URL`: when set, access tokens rollcall issued for this API are accepted.
    pub public_base_url: Option<String>,
}

impl ApiConfig {
    /// Reads `TABLE_NAME`, `BUCKET_NAME`, the `JWT_*` variables, `CURSOR_SECRET`,
    /// `MAX_BODY_BYTES` and `IMPORT_QUEUE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let cursor_key = config::required_secret("CURSOR_SECRET")?;
        if cursor_key.expose_secret().len() < 32 {
            return Err(ConfigError::Invalid {
                name: "CURSOR_SECRET",
                reason: "must be at least 32 characters".into(),
            });
        }
        Ok(ApiConfig {
            store: StoreConfig::from_env()?,
            bucket: BucketConfig::from_env()?,
            verifier: TokenVerifier::from_env()?,
            cursor_key,
            limits: Limits {
                max_body_bytes: config::parsed("MAX_BODY_BYTES")?
                    .unwrap_or(Limits::default().max_body_bytes),
            },
            import_queue_url: config::required("IMPORT_QUEUE_URL")?,
            public_base_url: config::optional("PUBLIC_BASE_URL"),
        })
    }
}

/// One route of the API.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path, in OpenAPI / axum syntax (`/users/{id}`).
    pub path: &'static str,
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use users::*;
    vec![
        route(Method::GET, "/health", get(health)),
        route(Method::GET, "/openapi.json", get(openapi)),
        route(Method::GET, "/users", get(list_users)),
        route(Method::POST, "/users", post(create_user)),
        route(Method::GET, "/users/{id}", get(get_user)),
        route(Method::PATCH, "/users/{id}", patch(patch_user)),
        route(Method::DELETE, "/users/{id}", delete(delete_user)),
        route(Method::POST, "/users/{id}/suspend", post(suspend_user)),
        route(
            Method::POST,
            "/users/{id}/reactivate",
            post(reactivate_user),
        ),
        route(
            Method::POST,
            "/users/{id}/invitation",
            post(invitations::resend_invitation),
        ),
        route(
            Method::POST,
            "/users/{id}/sessions/revoke",
            post(sessions::revoke_sessions),
        ),
        route(Method::POST, "/users/{id}/unlock", post(sessions::unlock)),
        route(
            Method::POST,
            "/users/{id}/password/reset",
            post(sessions::send_reset),
        ),
        route(
            Method::POST,
            "/account/password",
            post(sessions::change_password),
        ),
        route(Method::GET, "/users/export.csv", get(imports::export_users)),
        route(Method::GET, "/imports", get(imports::list_imports)),
        route(Method::POST, "/imports", post(imports::create_import)),
        route(Method::GET, "/imports/template.csv", get(imports::template)),
        route(Method::GET, "/imports/{id}", get(imports::get_import)),
        route(
            Method::POST,
            "/imports/{id}/apply",
            post(imports::apply_import),
        ),
        route(Method::GET, "/clients", get(clients::list_clients)),
        route(Method::POST, "/clients", post(clients::create_client)),
        route(
            Method::GET,
            "/clients/{client_id}",
            get(clients::get_client),
        ),
        route(
            Method::DELETE,
            "/clients/{client_id}",
            delete(clients::delete_client),
        ),
        route(Method::GET, "/billing/current", get(billing::current)),
        route(
            Method::GET,
            "/billing/snapshots",
            get(billing::list_snapshots),
        ),
        route(
            Method::GET,
            "/billing/snapshots/{month}",
            get(billing::get_snapshot),
        ),
        route(
            Method::GET,
            "/invitations/{token}",
            get(invitations::check_invitation),
        ),
        route(
            Method::POST,
            "/invitations/{token}/accept",
            post(invitations::accept_invitation),
        ),
    ]
}

/// The router: every route, the not-found and method-not-allowed fallbacks, and the
/// middleware that renders errors as problem+json in the caller's language.
pub fn app(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |r, route| r.route(route.path, route.handler))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(problem::localize))
        .with_state(state)
}

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /health`: the function is up (it does not touch the store, so it stays cheap).
async fn health() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        format!(
            "{{\"status\":\"ok\",\"version\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ),
    )
        .into_response()
}

/// `GET /openapi.json`
async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}
