//! A user's sign-ins, from the admin's side and their own: "sign out everywhere", clearing the
//! brute-force delay, mailing a reset link, and changing one's own password.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

use rollcall::account::{self, ChangePasswordError, ResetQueued};
use rollcall::domain::InvitationTrigger;

use crate::AppState;
use crate::auth::Caller;
use crate::input::{Fields, JsonObject};
use crate::problem::{ApiError, FieldProblem};
use crate::users::UserIdParam;

/// `POST /users/{id}/sessions/revoke`: ends every session, refresh family and access token of
/// the user issued until now ("sign out everywhere"). Anyone for themselves; admins and
/// managers for the users they manage.
pub async fn revoke_sessions(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
) -> Result<Response, ApiError> {
    let user = state.store.get_user(&caller.tenant, &id).await?;
    if caller.user_id != id && !caller.role.can_manage(user.profile.role) {
        return Err(ApiError::Forbidden);
    }
    let now = state.store.clock().now();
    state
        .store
        .revoke_sessions(&caller.tenant, &id, now)
        .await?;
    tracing::info!(tenant_id = %caller.tenant, user_id = %id, by = %caller.user_id, "sessions revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /users/{id}/unlock`: clears the user's failed sign-ins and the delay they earned.
/// Admins only.
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    state.store.get_user(&caller.tenant, &id).await?;
    state.store.clear_lock(&caller.tenant, &id).await?;
    tracing::info!(tenant_id = %caller.tenant, user_id = %id, by = %caller.user_id, "sign-in lock cleared");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /users/{id}/password/reset`: mails the user a link to choose a new password (never a
/// password). Admins only; the user must be active; at most 5 reset mails an hour per account.
pub async fn send_reset(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
) -> Result<Response, ApiError> {
    caller.ensure_admin()?;
    let user = state.store.get_user(&caller.tenant, &id).await?;
    match account::queue_reset(
        &state.store,
        &user,
        InvitationTrigger::PasswordResetByAdmin,
        Some(caller.user_id),
    )
    .await?
    {
        ResetQueued::Queued => {
            tracing::info!(tenant_id = %caller.tenant, user_id = %id, by = %caller.user_id, "reset mail queued by an admin");
            Ok(StatusCode::ACCEPTED.into_response())
        }
        ResetQueued::NotActive => Err(ApiError::NotResettable),
        ResetQueued::TooMany(seconds) => Err(ApiError::TooManyResets(seconds)),
    }
}

/// `POST /account/password {current_password, new_password}`: the caller changes their own
/// password. The current one is checked like a sign-in (the same lockout and address bound);
/// the new one against the tenant's policy. Every session, refresh family and access token of
/// the caller ends, the calling one too: sign in again with the new password.
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    lambda: Option<Extension<RequestContext>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let mut fields = Fields::new(body.map);
    let current = fields.required_string("current_password");
    let new = fields.required_string("new_password");
    let problems = fields.finish();
    let (Some(current), Some(new)) = (current, new) else {
        return Err(ApiError::Validation(problems));
    };
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let tenant = state.store.get_tenant(&caller.tenant).await?;
    let user = state
        .store
        .get_user(&caller.tenant, &caller.user_id)
        .await?;
    // API Gateway's sourceIp on Lambda, the peer when served directly: never a header.
    let address = match (lambda, peer) {
        (Some(Extension(RequestContext::ApiGatewayV2(ctx))), _) => ctx.http.source_ip,
        (_, Some(Extension(ConnectInfo(addr)))) => Some(addr.ip().to_string()),
        _ => None,
    };
    let now = state.store.clock().now();
    match account::change_password(
        &state.store,
        &tenant,
        &user,
        &current,
        &new,
        address.as_deref(),
        now,
    )
    .await
    {
        Ok(_) => {}
        Err(ChangePasswordError::Rejected(broken)) => {
            return Err(ApiError::PasswordRejected(
                broken
                    .iter()
                    .map(|rule| FieldProblem::new("new_password", rule))
                    .collect(),
            ));
        }
        Err(ChangePasswordError::CurrentRefused) => return Err(ApiError::CurrentPasswordWrong),
        Err(ChangePasswordError::Busy) => return Err(ApiError::Busy),
        Err(ChangePasswordError::Store(e)) => return Err(e.into()),
        Err(e @ ChangePasswordError::Hash(_)) => return Err(ApiError::internal(e)),
    }
    tracing::info!(tenant_id = %caller.tenant, user_id = %caller.user_id, "password changed through the API");
    Ok(StatusCode::NO_CONTENT.into_response())
}
