//! The tenant: one customer organisation and the settings its admins choose.

use serde::{Deserialize, Serialize};

use super::{
    DisplayName, Language, PageSettings, PasswordPolicy, Role, RoleCatalogue, Status, TenantId,
    TimeZone, User,
};

/// A tenant and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// The tenant's id, as in tokens.
    pub id: TenantId,
    /// The organisation's name, shown in mail.
    pub name: DisplayName,
    /// The time zone whose month ends close billing periods (default Asia/Tokyo).
    pub billing_time_zone: TimeZone,
    /// The language used for users who have not chosen one.
    pub language: Language,
    /// The most billable users the tenant may have, if limited.
    pub seat_limit: Option<u32>,
    /// The app roles users may hold.
    pub role_catalogue: RoleCatalogue,
    /// The password rules.
    pub password_policy: PasswordPolicy,
    /// Billing settings.
    pub billing: BillingPolicy,
    /// Token lifetimes and the second step.
    pub sign_in: SignInPolicy,
    /// How the hosted pages look and where they lead.
    pub pages: PageSettings,
}

/// A tenant's token lifetimes, each within the bounds [`SignInPolicy::check`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignInPolicy {
    /// Access and ID tokens live this many minutes (1–60; default 15).
    pub access_token_minutes: u32,
    /// A refresh family lives at most this many days from sign-in (1–365; default 30).
    pub refresh_absolute_days: u32,
    /// A refresh token unused this many days dies (1–absolute; default 7).
    pub refresh_idle_days: u32,
    /// Seconds after a rotation in which the previous refresh token still works once (0–60;
    /// default 30), so two tabs refreshing together don't revoke each other.
    pub refresh_grace_seconds: u32,
    /// Who must enter an emailed code after the password.
    pub two_step: TwoStep,
}

/// Who must enter an emailed code after the password (ASVS 5.0 §6.6): a tenant policy, on top
/// of each user's own `two_step`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwoStep {
    /// Users whose own `two_step` is on.
    #[default]
    PerUser,
    /// Those, and every admin.
    Admins,
    /// Everyone.
    Everyone,
}

impl TwoStep {
    /// Whether `user` must enter a code.
    pub fn requires(self, user: &User) -> bool {
        user.profile.two_step
            || match self {
                TwoStep::PerUser => false,
                TwoStep::Admins => user.profile.role == Role::Admin,
                TwoStep::Everyone => true,
            }
    }

    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TwoStep::PerUser => "per_user",
            TwoStep::Admins => "admins",
            TwoStep::Everyone => "everyone",
        }
    }
}

impl std::str::FromStr for TwoStep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.replace('-', "_").as_str() {
            "per_user" => Ok(TwoStep::PerUser),
            "admins" => Ok(TwoStep::Admins),
            "everyone" => Ok(TwoStep::Everyone),
            _ => Err("must be per-user, admins or everyone".into()),
        }
    }
}

impl Default for SignInPolicy {
    fn default() -> Self {
        SignInPolicy {
            access_token_minutes: 15,
            refresh_absolute_days: 30,
            refresh_idle_days: 7,
            refresh_grace_seconds: 30,
            two_step: TwoStep::PerUser,
        }
    }
}

/// A sign-in policy value out of its bounds: the field and its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max}")]
pub struct SignInPolicyError {
    /// The field.
    pub field: &'static str,
    /// Its least value.
    pub min: u32,
    /// Its greatest value.
    pub max: u32,
}

impl SignInPolicy {
    /// Checks every bound; the first field out of bounds is named.
    pub fn check(self) -> Result<SignInPolicy, SignInPolicyError> {
        let bounds = [
            ("access_token_minutes", self.access_token_minutes, 1, 60),
            ("refresh_absolute_days", self.refresh_absolute_days, 1, 365),
            (
                "refresh_idle_days",
                self.refresh_idle_days,
                1,
                self.refresh_absolute_days.max(1),
            ),
            ("refresh_grace_seconds", self.refresh_grace_seconds, 0, 60),
        ];
        for (field, value, min, max) in bounds {
            if !(min..=max).contains(&value) {
                return Err(SignInPolicyError { field, min, max });
            }
        }
        Ok(self)
    }
}

/// How a tenant is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BillingPolicy {
    /// Whether invited users (who have not set a password) are billable.
    pub count_invited: bool,
}

impl BillingPolicy {
    /// Whether a user in `status` holds a seat: active users always, invited ones when the
    /// tenant bills them.
    pub fn holds_seat(self, status: Status) -> bool {
        match status {
            Status::Active => true,
            Status::Invited => self.count_invited,
            Status::Suspended => false,
        }
    }
}

impl Default for BillingPolicy {
    fn default() -> Self {
        BillingPolicy {
            count_invited: true,
        }
    }
}

/// How many of a tenant's users hold a seat, by the counters kept on the tenant item. A user
/// holds a seat while active, or invited when the tenant bills invited users, whatever their
/// validity window says: a window can open without any write, so only this count guarantees
/// that the billable count never exceeds the seat limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeatUsage {
    /// Active users.
    pub active: u64,
    /// Active and invited users.
    pub active_or_invited: u64,
}

impl SeatUsage {
    /// The seats in use under `policy`.
    pub fn used(self, policy: BillingPolicy) -> u64 {
        if policy.count_invited {
            self.active_or_invited
        } else {
            self.active
        }
    }
}

impl Tenant {
    /// A tenant with the default settings: Asia/Tokyo, Japanese, no seat limit, an empty role
    /// catalogue and the default password policy.
    pub fn new(id: TenantId, name: DisplayName) -> Tenant {
        Tenant {
            id,
            name,
            billing_time_zone: TimeZone::TOKYO,
            language: Language::Ja,
            seat_limit: None,
            role_catalogue: RoleCatalogue::default(),
            password_policy: PasswordPolicy::default(),
            billing: BillingPolicy::default(),
            sign_in: SignInPolicy::default(),
            pages: PageSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sign_in_policy_is_within_its_bounds_and_each_bound_is_named() {
        assert_eq!(SignInPolicy::default().check(), Ok(SignInPolicy::default()));
        let too_long_grace = SignInPolicy {
            refresh_grace_seconds: 61,
            ..SignInPolicy::default()
        };
        assert_eq!(
            too_long_grace.check().unwrap_err().field,
            "refresh_grace_seconds"
        );
        let idle_over_absolute = SignInPolicy {
            refresh_absolute_days: 5,
            refresh_idle_days: 7,
            ..SignInPolicy::default()
        };
        let e = idle_over_absolute.check().unwrap_err();
        assert_eq!((e.field, e.max), ("refresh_idle_days", 5));
        let no_grace = SignInPolicy {
            refresh_grace_seconds: 0,
            ..SignInPolicy::default()
        };
        assert!(no_grace.check().is_ok());
    }
}
