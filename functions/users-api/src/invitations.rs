//! The invitation routes: the invited user checks a link and sets a password with it
//! (no bearer token: the link is the credential), and admins resend an invitation.
//!
//! `GET /invitations/{token}` never uses the link: mail scanners and link previews open links
//! before people do. Only `POST .../accept` with a password that meets the tenant's policy
//! burns it.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use rollcall::account::{self, Link, SetPasswordError};
use rollcall::domain::{
    Invitation, InvitationToken, InvitationTrigger, Language, Localized, MailKind, PasswordPolicy,
    SYMBOLS, Status, TokenState,
};
use rollcall::store::{StoreError, UserInvitations};
use serde::Serialize;

use crate::AppState;
use crate::auth::Caller;
use crate::input::{Fields, JsonObject};
use crate::problem::{ApiError, FieldProblem, request_language};
use crate::users::{UserIdParam, target_for_write, user_response};

/// Resends allowed per user in any hour.
pub const RESENDS_PER_HOUR: usize = 5;

/// The `{token}` of an invitation route. Text that can't be a token names no invitation: 404.
pub struct TokenParam(InvitationToken);

impl FromRequestParts<AppState> for TokenParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvitationNotFound)?;
        InvitationToken::parse(&raw)
            .map(TokenParam)
            .map_err(|_| ApiError::InvitationNotFound)
    }
}

/// Looks a link up for the JSON routes: only an invitation's link (reset links belong to the
/// hosted pages); an unknown one is 404.
async fn resolve(state: &AppState, token: &InvitationToken) -> Result<Link, ApiError> {
    match Link::resolve(&state.store, token).await? {
        Some(link) if link.kind == MailKind::Invitation => Ok(link),
        _ => Err(ApiError::InvitationNotFound),
    }
}

fn refusal(link: TokenState) -> ApiError {
    match link {
        TokenState::Valid => ApiError::Busy,
        TokenState::Expired => ApiError::InvitationExpired,
        TokenState::Used => ApiError::InvitationUsed,
        TokenState::Revoked => ApiError::InvitationRevoked,
    }
}

/// One rule of a password policy, for the set-password page.
#[derive(Debug, Serialize)]
pub struct RuleView {
    code: &'static str,
    message: String,
}

/// The rules `policy` enforces, described in `lang`.
pub fn policy_rules(policy: &PasswordPolicy, lang: Language) -> Vec<RuleView> {
    account::policy_rules(policy)
        .into_iter()
        .map(|r| RuleView {
            code: r.code(),
            message: r.message(lang),
        })
        .collect()
}

/// What `GET /invitations/{token}` answers.
#[derive(Debug, Serialize)]
pub struct LinkView {
    /// `valid`, `expired`, `used` or `revoked`.
    status: &'static str,
    /// The state's code (`invitation_valid`, `invitation_expired`…).
    code: &'static str,
    /// The state explained in the caller's language.
    message: String,
    tenant_name: String,
    expires_at: DateTime<Utc>,
    /// Only while the link is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    login_id: Option<String>,
    /// Only while the link is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    password_rules: Option<PasswordRulesView>,
}

/// The tenant's password rules.
#[derive(Debug, Serialize)]
pub struct PasswordRulesView {
    min_length: usize,
    max_length: usize,
    require_upper: bool,
    require_lower: bool,
    require_digit: bool,
    require_symbol: bool,
    forbid_login_id: bool,
    symbols: &'static str,
    rules: Vec<RuleView>,
}

impl PasswordRulesView {
    fn new(p: &PasswordPolicy, lang: Language) -> PasswordRulesView {
        PasswordRulesView {
            min_length: p.min_length.max(1),
            max_length: p.max_length,
            require_upper: p.require_upper,
            require_lower: p.require_lower,
            require_digit: p.require_digit,
            require_symbol: p.require_symbol,
            forbid_login_id: p.forbid_login_id,
            symbols: SYMBOLS,
            rules: policy_rules(p, lang),
        }
    }
}

/// `GET /invitations/{token}`: what the link can do, without using it.
pub async fn check_invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    TokenParam(token): TokenParam,
) -> Result<Json<LinkView>, ApiError> {
    let lang = request_language(&headers);
    let link = resolve(&state, &token).await?;
    let valid = link.state == TokenState::Valid;
    let user = link.user();
    Ok(Json(LinkView {
        status: link.state.as_str(),
        code: link.state.code(),
        message: link.state.message(lang),
        tenant_name: link.tenant.name.as_str().to_owned(),
        expires_at: link.token.link_expires_at,
        login_id: user.map(|u| u.profile.login_id.as_str().to_owned()),
        password_rules: valid.then(|| PasswordRulesView::new(&link.tenant.password_policy, lang)),
    }))
}

/// What a successful accept answers.
#[derive(Debug, Serialize)]
pub struct AcceptedView {
    status: &'static str,
    login_id: String,
    tenant_name: String,
}

/// `POST /invitations/{token}/accept {password}`: sets the password, activates the user and
/// burns the link.
pub async fn accept_invitation(
    State(state): State<AppState>,
    TokenParam(token): TokenParam,
    body: JsonObject,
) -> Result<Json<AcceptedView>, ApiError> {
    let mut fields = Fields::new(body.map);
    let candidate = fields.required_string("password");
    let problems = fields.finish();
    let candidate = match candidate {
        Some(c) if problems.is_empty() => c,
        _ => return Err(ApiError::Validation(problems)),
    };

    let link = resolve(&state, &token).await?;
    let saved = match account::set_password(&state.store, &token, &link, &candidate).await {
        Ok(saved) => saved,
        Err(SetPasswordError::Link(now)) => return Err(refusal(now)),
        Err(SetPasswordError::Rejected(broken)) => {
            return Err(ApiError::PasswordRejected(
                broken
                    .iter()
                    .map(|rule| FieldProblem::new("password", rule))
                    .collect(),
            ));
        }
        Err(SetPasswordError::Busy) => return Err(ApiError::Busy),
        Err(SetPasswordError::Store(e)) => return Err(e.into()),
        Err(e @ SetPasswordError::Hash(_)) => return Err(ApiError::internal(e)),
    };
    Ok(Json(AcceptedView {
        status: saved.status.as_str(),
        login_id: saved.profile.login_id.as_str().to_owned(),
        tenant_name: link.tenant.name.as_str().to_owned(),
    }))
}

/// Resends in the hour before `now`, and when the oldest of them leaves that hour.
fn resends_in_last_hour(found: &UserInvitations, now: DateTime<Utc>) -> (usize, Option<i64>) {
    let hour_ago = now - Duration::hours(1);
    let recent: Vec<&Invitation> = found
        .invitations
        .iter()
        .filter(|i| i.trigger == InvitationTrigger::Resend && i.created_at > hour_ago)
        .collect();
    let free_at = recent
        .iter()
        .map(|i| i.created_at + Duration::hours(1))
        .min()
        .map(|t| ((t - now).num_milliseconds() + 999) / 1000);
    (recent.len(), free_at)
}

/// `POST /users/{id}/invitation`: sends a new invitation and revokes every earlier link. At most
/// [`RESENDS_PER_HOUR`] an hour per user.
pub async fn resend_invitation(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut attempt = 0;
    loop {
        let (user, found) = target_for_write(&state, &caller, &id, &headers).await?;
        if user.status == Status::Suspended {
            return Err(ApiError::NotInvitable);
        }
        let now = state.store.clock().now();
        let (recent, free_in) = resends_in_last_hour(&found, now);
        if recent >= RESENDS_PER_HOUR {
            return Err(ApiError::TooManyResends(free_in.unwrap_or(3600)));
        }
        let invitation =
            Invitation::new(&user, InvitationTrigger::Resend, Some(caller.user_id), now);
        match state
            .store
            .reinvite(&user, &found.unsuperseded(), &invitation)
            .await
        {
            Ok(()) => {
                tracing::info!(tenant_id = %caller.tenant, user_id = %id, invitation_id = %invitation.id, "invitation resent");
                return user_response(
                    &state,
                    StatusCode::ACCEPTED,
                    &user,
                    Some(&invitation),
                    &found.sign_in,
                );
            }
            // A concurrent resend or edit won; read again and decide again (once).
            Err(StoreError::InvitationChanged | StoreError::VersionConflict) if attempt == 0 => {
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
