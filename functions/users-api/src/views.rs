//! How users look in API responses.

use chrono::{DateTime, SecondsFormat, Utc};
use rollcall::domain::{Invitation, InvitationStatus, InvitationTrigger, User};
use rollcall::store::SignInState;
use serde::Serialize;

/// A user as the API returns it.
#[derive(Debug, Serialize)]
pub struct UserView {
    id: String,
    login_id: String,
    email: String,
    name: String,
    role: &'static str,
    app_roles: Vec<String>,
    groups: Vec<String>,
    organization: Option<String>,
    department: Option<String>,
    phone: Option<String>,
    notes: Option<String>,
    language: Option<&'static str>,
    time_zone: Option<&'static str>,
    valid_from: Option<DateTime<Utc>>,
    valid_till: Option<DateTime<Utc>>,
    login_hours: Option<String>,
    /// Whether the user enters an emailed code after the password (their own setting; the
    /// tenant's policy may ask it of more users).
    two_step: bool,
    status: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
    /// The newest invitation, on single-user responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    invitation: Option<InvitationView>,
    /// The last successful sign-in, on single-user responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_signed_in_at: Option<DateTime<Utc>>,
    /// Until when sign-in attempts wait (brute-force delay), while they do.
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until: Option<DateTime<Utc>>,
}

impl UserView {
    /// The user with their newest invitation as it stands at `now`.
    pub fn with_invitation(
        user: &User,
        invitation: Option<&Invitation>,
        now: DateTime<Utc>,
    ) -> UserView {
        UserView {
            invitation: invitation.map(|i| InvitationView::new(i, now)),
            ..UserView::from(user)
        }
    }
}

impl UserView {
    /// The same view with the user's sign-in record as it stands at `now`.
    pub fn with_sign_in(mut self, s: &SignInState, now: DateTime<Utc>) -> UserView {
        self.last_signed_in_at = s.last_signed_in_at;
        self.locked_until = s.locked_until.filter(|l| *l > now);
        self
    }
}

/// Where a user's invitation stands.
#[derive(Debug, Serialize)]
pub struct InvitationView {
    id: String,
    /// `pending`, `sent`, `failed`, `accepted`, `revoked` or `expired`.
    status: &'static str,
    trigger: InvitationTrigger,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    attempts: u32,
    failure: Option<FailureView>,
}

/// Why SES refused (or last refused) an invitation.
#[derive(Debug, Serialize)]
pub struct FailureView {
    code: String,
    message: String,
}

impl InvitationView {
    /// The invitation as it stands at `now`.
    pub fn new(i: &Invitation, now: DateTime<Utc>) -> InvitationView {
        let status = match i.effective_status(now) {
            InvitationStatus::Pending | InvitationStatus::Sending => "pending",
            InvitationStatus::Sent => "sent",
            InvitationStatus::Failed => "failed",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        };
        InvitationView {
            id: i.id.to_string(),
            status,
            trigger: i.trigger,
            created_at: i.created_at,
            sent_at: i.sent_at,
            expires_at: i.link_expires_at,
            attempts: i.attempts,
            failure: i.failure.as_ref().map(|(code, message)| FailureView {
                code: code.clone(),
                message: message.clone(),
            }),
        }
    }
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            login_id: u.profile.login_id.to_string(),
            email: u.profile.email.to_string(),
            name: u.profile.name.to_string(),
            role: u.profile.role.as_str(),
            app_roles: u
                .profile
                .app_roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            groups: u
                .profile
                .groups
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            organization: u.profile.organization.as_ref().map(|v| v.to_string()),
            department: u.profile.department.as_ref().map(|v| v.to_string()),
            phone: u.profile.phone.as_ref().map(|v| v.to_string()),
            notes: u.profile.notes.as_ref().map(|v| v.to_string()),
            language: u.profile.language.map(|l| l.as_str()),
            time_zone: u.profile.time_zone.map(|t| t.name()),
            valid_from: u.profile.validity.from(),
            valid_till: u.profile.validity.till(),
            login_hours: u.profile.login_hours.map(|h| h.to_string()),
            two_step: u.profile.two_step,
            status: u.status.as_str(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            version: u.version,
            invitation: None,
            last_signed_in_at: None,
            locked_until: None,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize)]
pub struct UserPage {
    /// The users.
    pub items: Vec<UserView>,
    /// The cursor of the next page, if there may be one.
    pub next_cursor: Option<String>,
}

/// A UTC time as the API writes it: RFC 3339 with milliseconds and `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
