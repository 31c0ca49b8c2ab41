//! The source address of a request, which bounds sign-in attempts and reset requests. The
//! checks themselves live in [`rollcall::account::authenticate`], shared with the account page
//! and the API's password change.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use rollcall::domain::{Tenant, User};
use rollcall::store::Store;

pub use rollcall::account::SignInError;

/// The request's source address: API Gateway's `sourceIp` on Lambda, the peer address when
/// served directly, else unknown. Never a header a client can write.
#[derive(Debug, Clone)]
pub struct SourceAddress(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        if let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.get::<RequestContext>() {
            return Ok(SourceAddress(ctx.http.source_ip.clone()));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(SourceAddress(peer))
    }
}

/// Checks `login` (a login id or an email, any case) and `password` at `tenant`, from
/// `source` ([`rollcall::account::authenticate`]).
pub async fn authenticate(
    store: &Store,
    tenant: &Tenant,
    login: &str,
    password: &str,
    source: &SourceAddress,
) -> Result<User, SignInError> {
    rollcall::account::authenticate(store, tenant, login, password, source.0.as_deref()).await
}
