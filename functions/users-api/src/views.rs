//! How users look in API responses.

use chrono::{DateTime, Utc};
use rollcall::domain::User;
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
    status: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            login_id: u.login_id.to_string(),
            email: u.email.to_string(),
            name: u.name.to_string(),
            role: u.role.as_str(),
            app_roles: u.app_roles.iter().map(|r| r.as_str().to_owned()).collect(),
            groups: u.groups.iter().map(|g| g.as_str().to_owned()).collect(),
            organization: u.organization.as_ref().map(|v| v.to_string()),
            department: u.department.as_ref().map(|v| v.to_string()),
            phone: u.phone.as_ref().map(|v| v.to_string()),
            notes: u.notes.as_ref().map(|v| v.to_string()),
            language: u.language.map(|l| l.as_str()),
            time_zone: u.time_zone.map(|t| t.name()),
            valid_from: u.validity.from(),
            valid_till: u.validity.till(),
            status: u.status.as_str(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            version: u.version,
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
