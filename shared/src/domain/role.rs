//! Management roles and what each may do to whom: the role matrix of the product.
//!
//! - `admin`: everything, on everyone in the tenant.
//! - `manager`: reads everyone; creates, edits, suspends and deletes members only, and can't
//!   make anyone a manager or admin.
//! - `member`: reads their own record only.
//!
//! Self-protection (nobody deletes, suspends or demotes themselves) and the last-admin rule are
//! enforced where those actions happen (the API and the store), not here.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{Language, Localized};

/// A management role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages everyone.
    Admin,
    /// Manages members.
    Manager,
    /// Manages nobody.
    Member,
}

/// The text is not a management role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be admin, manager or member")]
pub struct RoleError;

impl Localized for RoleError {
    fn code(&self) -> &'static str {
        "role_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => "権限は admin、manager、member のいずれかを指定してください。".into(),
            Language::En => "Role must be admin, manager or member.".into(),
        }
    }
}

impl Role {
    /// The role's name as in tokens, CSV files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Member => "member",
        }
    }

    /// May someone with this role list users and read anyone's record?
    pub fn can_read_others(self) -> bool {
        match self {
            Role::Admin | Role::Manager => true,
            Role::Member => false,
        }
    }

    /// May someone with this role create, edit, suspend, reactivate or delete a user whose role
    /// is `target`?
    pub fn can_manage(self, target: Role) -> bool {
        match (self, target) {
            (Role::Admin, _) => true,
            (Role::Manager, Role::Member) => true,
            (Role::Manager, Role::Admin | Role::Manager) => false,
            (Role::Member, _) => false,
        }
    }

    /// May someone with this role give a user the role `assigned`?
    pub fn can_assign(self, assigned: Role) -> bool {
        self.can_manage(assigned)
    }
}

impl FromStr for Role {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Any case, without a lower-cased copy: import files give one a row.
        let s = super::trim(s);
        [Role::Admin, Role::Manager, Role::Member]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or(RoleError)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Role; 3] = [Role::Admin, Role::Manager, Role::Member];

    #[test]
    fn the_role_matrix_is_exactly_as_the_product_says() {
        // (actor, target) -> may manage
        let expected = [
            (Role::Admin, Role::Admin, true),
            (Role::Admin, Role::Manager, true),
            (Role::Admin, Role::Member, true),
            (Role::Manager, Role::Admin, false),
            (Role::Manager, Role::Manager, false),
            (Role::Manager, Role::Member, true),
            (Role::Member, Role::Admin, false),
            (Role::Member, Role::Manager, false),
            (Role::Member, Role::Member, false),
        ];
        for (actor, target, may) in expected {
            assert_eq!(actor.can_manage(target), may, "{actor} -> {target}");
            assert_eq!(actor.can_assign(target), may, "{actor} assigns {target}");
        }
    }

    #[test]
    fn only_admins_and_managers_read_other_records() {
        let readers: Vec<Role> = ALL.into_iter().filter(|r| r.can_read_others()).collect();
        assert_eq!(readers, vec![Role::Admin, Role::Manager]);
    }

    #[test]
    fn roles_round_trip_through_text() {
        for r in ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!("Owner".parse::<Role>(), Err(RoleError));
    }
}
