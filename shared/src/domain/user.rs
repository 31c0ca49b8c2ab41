//! The user: a member of a tenant, with the state history that billing reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AppRoles, DisplayName, Email, Groups, Language, LoginHours, LoginId, Notes, PasswordHash,
    Phone, Role, ShortText, Status, TenantId, TimeZone, UserId, ValidityWindow,
};

/// What an admin sets on a user, already validated: everything needed to create one, and the
/// part of a stored [`User`] that edits change (the rest is identity, lifecycle and bookkeeping).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Unique per tenant, ignoring case.
    pub login_id: LoginId,
    /// Unique per tenant, ignoring case.
    pub email: Email,
    /// Shown in lists and mail.
    pub name: DisplayName,
    /// Management role.
    pub role: Role,
    /// Application roles (checked against the tenant catalogue by whoever builds this).
    pub app_roles: AppRoles,
    /// Groups.
    pub groups: Groups,
    /// Organisation.
    pub organization: Option<ShortText>,
    /// Department.
    pub department: Option<ShortText>,
    /// Phone number.
    pub phone: Option<Phone>,
    /// Notes.
    pub notes: Option<Notes>,
    /// Preferred language; the tenant's when absent.
    pub language: Option<Language>,
    /// Preferred time zone; the tenant's when absent.
    pub time_zone: Option<TimeZone>,
    /// When the account may be used.
    pub validity: ValidityWindow,
    /// The weekdays and hours (in the user's time zone) when they may sign in; any time when
    /// absent.
    pub login_hours: Option<LoginHours>,
    /// Whether the user enters an emailed code after the password (the tenant's policy may ask
    /// it of more users: [`crate::domain::TwoStep`]).
    pub two_step: bool,
}

impl Profile {
    /// A user with only the required fields; everything optional empty, always valid.
    pub fn minimal(login_id: LoginId, email: Email, name: DisplayName, role: Role) -> Profile {
        Profile {
            login_id,
            email,
            name,
            role,
            app_roles: AppRoles::default(),
            groups: Groups::default(),
            organization: None,
            department: None,
            phone: None,
            notes: None,
            language: None,
            time_zone: None,
            validity: ValidityWindow::unbounded(),
            login_hours: None,
            two_step: false,
        }
    }
}

/// The lifecycle state of a user at some instant: what billing needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserState {
    /// Invited, no password yet.
    Invited,
    /// Signed up.
    Active,
    /// Suspended.
    Suspended,
    /// Deleted (a tombstone).
    Deleted,
}

impl UserState {
    /// The state's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Invited => "invited",
            UserState::Active => "active",
            UserState::Suspended => "suspended",
            UserState::Deleted => "deleted",
        }
    }
}

impl From<Status> for UserState {
    fn from(s: Status) -> Self {
        match s {
            Status::Invited => UserState::Invited,
            Status::Active => UserState::Active,
            Status::Suspended => UserState::Suspended,
        }
    }
}

/// One entry of a user's history: from `at` on, the user was in `state` with this validity
/// window. Entries are appended, never rewritten, so any past instant can be answered exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// When the change took effect.
    pub at: DateTime<Utc>,
    /// The state from then on.
    pub state: UserState,
    /// The validity window from then on.
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    /// The validity window from then on.
    #[serde(default)]
    pub valid_till: Option<DateTime<Utc>>,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The tenant the user belongs to.
    pub tenant: TenantId,
    /// Everything an admin edits: login id, email, name, roles, profile fields, validity.
    pub profile: Profile,
    /// Lifecycle status.
    pub status: Status,
    /// Whether the user has ever set a password (decides where reactivation leads).
    pub has_password: bool,
    /// The argon2id hash of the password the user set through an invitation.
    pub password_hash: Option<PasswordHash>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, starting at 1 and raised by every write.
    pub version: u64,
    /// Lifecycle history, oldest first.
    pub history: Vec<StateChange>,
}

/// Why an account may not sign in (or refresh, or call the API with a rollcall token) now. For
/// logs and tests only: a person is never told which (ASVS 5.0 §6.3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAllowed {
    /// Invited (no password yet) or suspended.
    Status(Status),
    /// Outside the validity window.
    OutsideValidity,
    /// Outside the login hours.
    OutsideLoginHours,
}

impl User {
    /// Whether the user may sign in at `now`: active, inside the validity window and inside
    /// their login hours (in their time zone, else `default_zone`, the tenant's). The same rule
    /// holds at every refresh and every API call made with a token rollcall issued.
    pub fn may_sign_in(
        &self,
        now: DateTime<Utc>,
        default_zone: TimeZone,
    ) -> Result<(), NotAllowed> {
        if self.status != Status::Active {
            return Err(NotAllowed::Status(self.status));
        }
        if !self.profile.validity.contains(now) {
            return Err(NotAllowed::OutsideValidity);
        }
        if let Some(hours) = &self.profile.login_hours {
            let zone = self.profile.time_zone.unwrap_or(default_zone);
            if !hours.allows(now, zone.tz()) {
                return Err(NotAllowed::OutsideLoginHours);
            }
        }
        Ok(())
    }

    /// A user who is an active admin counts towards the tenant's "last admin" guard.
    pub fn is_active_admin(&self) -> bool {
        self.profile.role == Role::Admin && self.status == Status::Active
    }

    /// Builds a fresh user from validated input.
    pub fn new(
        tenant: TenantId,
        id: UserId,
        new: Profile,
        status: Status,
        now: DateTime<Utc>,
    ) -> User {
        let history = vec![StateChange {
            at: now,
            state: status.into(),
            valid_from: new.validity.from(),
            valid_till: new.validity.till(),
        }];
        User {
            id,
            tenant,
            profile: new,
            has_password: status == Status::Active,
            password_hash: None,
            status,
            created_at: now,
            updated_at: now,
            version: 1,
            history,
        }
    }

    /// Records `now` as the time of a change, appending a history entry when the billable state
    /// (status or validity window) differs from the last entry.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        let state: UserState = self.status.into();
        let changed = self.history.last().is_none_or(|last| {
            last.state != state
                || last.valid_from != self.profile.validity.from()
                || last.valid_till != self.profile.validity.till()
        });
        if changed {
            self.history.push(StateChange {
                at: now,
                state,
                valid_from: self.profile.validity.from(),
                valid_till: self.profile.validity.till(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn sample(now: DateTime<Utc>) -> User {
        User::new(
            TenantId::parse("acme").unwrap(),
            UserId::generate(),
            Profile::minimal(
                LoginId::parse("taro").unwrap(),
                Email::parse("taro@example.com").unwrap(),
                DisplayName::parse("山田 太郎").unwrap(),
                Role::Member,
            ),
            Status::Invited,
            now,
        )
    }

    #[test]
    fn state_names_are_the_stored_names() {
        for s in [
            UserState::Invited,
            UserState::Active,
            UserState::Suspended,
            UserState::Deleted,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn only_billable_changes_add_history_entries() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut u = sample(t0);
        assert_eq!(u.history.len(), 1);

        u.profile.name = DisplayName::parse("山田 花子").unwrap();
        u.touch(t0 + chrono::Duration::hours(1));
        assert_eq!(u.history.len(), 1, "a rename is not a billable change");

        u.status = u.status.suspend().unwrap();
        let t2 = t0 + chrono::Duration::hours(2);
        u.touch(t2);
        assert_eq!(u.history.len(), 2);
        assert_eq!(u.history[1].at, t2);
        assert_eq!(u.history[1].state, UserState::Suspended);
        assert_eq!(u.updated_at, t2);
    }
}
