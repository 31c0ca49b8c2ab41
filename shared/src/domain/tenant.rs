//! The tenant: one customer organisation and the settings its admins choose.

use serde::{Deserialize, Serialize};

use super::{DisplayName, Language, PasswordPolicy, RoleCatalogue, Status, TenantId, TimeZone};

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
        }
    }
}
