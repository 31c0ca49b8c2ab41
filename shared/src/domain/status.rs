//! A user's lifecycle status and its legal transitions.
//!
//! ```text
//! invited --accept--> active
//! invited --suspend--> suspended --reactivate--> invited   (never set a password)
//! active  --suspend--> suspended --reactivate--> active    (had set a password)
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{Language, Localized};

/// Where a user is in their lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created and invited; has not set a password yet.
    Invited,
    /// Has set a password and may sign in.
    Active,
    /// May not sign in until reactivated.
    Suspended,
}

/// The text is not a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status must be invited, active or suspended")]
pub struct StatusError;

impl Localized for StatusError {
    fn code(&self) -> &'static str {
        "status_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => "状態は invited、active、suspended のいずれかです。".into(),
            Language::En => "Status must be invited, active or suspended.".into(),
        }
    }
}

/// A status change that the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a user who is {from} can't be {action}")]
pub struct TransitionError {
    /// The current status.
    pub from: Status,
    /// What was attempted: `suspended`, `reactivated` or `activated`.
    pub action: &'static str,
}

impl Localized for TransitionError {
    fn code(&self) -> &'static str {
        "invalid_transition"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => {
                let from = match self.from {
                    Status::Invited => "招待中",
                    Status::Active => "有効",
                    Status::Suspended => "停止中",
                };
                let action = match self.action {
                    "suspended" => "停止",
                    "reactivated" => "再開",
                    _ => "有効化",
                };
                format!("{from}のユーザーは{action}できません。")
            }
            Language::En => format!("A user who is {} can't be {}.", self.from, self.action),
        }
    }
}

impl Status {
    /// The status's name in the API and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Invited => "invited",
            Status::Active => "active",
            Status::Suspended => "suspended",
        }
    }

    /// Suspends an invited or active user.
    pub fn suspend(self) -> Result<Status, TransitionError> {
        match self {
            Status::Invited | Status::Active => Ok(Status::Suspended),
            Status::Suspended => Err(TransitionError {
                from: self,
                action: "suspended",
            }),
        }
    }

    /// Reactivates a suspended user: back to `active` if they had set a password, else to
    /// `invited`.
    pub fn reactivate(self, has_password: bool) -> Result<Status, TransitionError> {
        match self {
            Status::Suspended if has_password => Ok(Status::Active),
            Status::Suspended => Ok(Status::Invited),
            Status::Invited | Status::Active => Err(TransitionError {
                from: self,
                action: "reactivated",
            }),
        }
    }

    /// Activates an invited user who has set their password.
    pub fn activate(self) -> Result<Status, TransitionError> {
        match self {
            Status::Invited => Ok(Status::Active),
            Status::Active | Status::Suspended => Err(TransitionError {
                from: self,
                action: "activated",
            }),
        }
    }
}

impl FromStr for Status {
    type Err = StatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "invited" => Ok(Status::Invited),
            "active" => Ok(Status::Active),
            "suspended" => Ok(Status::Suspended),
            _ => Err(StatusError),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn only_the_documented_transitions_are_legal() {
        assert_eq!(Invited.suspend(), Ok(Suspended));
        assert_eq!(Active.suspend(), Ok(Suspended));
        assert!(Suspended.suspend().is_err());

        assert_eq!(Suspended.reactivate(true), Ok(Active));
        assert_eq!(Suspended.reactivate(false), Ok(Invited));
        assert!(Active.reactivate(true).is_err());
        assert!(Invited.reactivate(false).is_err());

        assert_eq!(Invited.activate(), Ok(Active));
        assert!(Active.activate().is_err());
        assert!(Suspended.activate().is_err());
    }

    #[test]
    fn a_refused_transition_explains_itself_in_both_languages() {
        let e = Active.reactivate(true).unwrap_err();
        assert_eq!(e.code(), "invalid_transition");
        assert_eq!(
            e.message(Language::En),
            "A user who is active can't be reactivated."
        );
        assert_eq!(e.message(Language::Ja), "有効のユーザーは再開できません。");
    }
}
