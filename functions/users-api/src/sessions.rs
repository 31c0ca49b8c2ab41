//! A user's sign-ins, from the admin's side and their own: "sign out everywhere" and clearing
//! the brute-force delay.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::ApiError;
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
