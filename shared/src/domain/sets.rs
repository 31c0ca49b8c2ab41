//! Sets of names attached to a user: application roles (checked against the tenant's role
//! catalogue) and groups.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeSet;

use super::{Language, Localized};

/// Why an app role or group name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// An app role name must be 1–64 of ASCII letters, digits and `_ . : -`.
    #[error("app role names are 1-64 characters of letters, digits and _ . : -")]
    AppRoleName,
    /// A group name must be 1–100 characters without control characters or `|`.
    #[error("group names are 1-100 characters without control characters or '|'")]
    GroupName,
    /// More than 50 entries.
    #[error("at most 50 entries")]
    TooMany,
}

impl Localized for SetError {
    fn code(&self) -> &'static str {
        match self {
            SetError::AppRoleName => "app_role_invalid",
            SetError::GroupName => "group_invalid",
            SetError::TooMany => "too_many",
        }
    }
    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (SetError::AppRoleName, Language::Ja) => {
                "アプリ権限名は半角英数字と _ . : - の1〜64文字です。".into()
            }
            (SetError::AppRoleName, Language::En) => {
                "An app role name is 1-64 characters of letters, digits and _ . : -.".into()
            }
            (SetError::GroupName, Language::Ja) => {
                "グループ名は1〜100文字で、制御文字と | は使えません。".into()
            }
            (SetError::GroupName, Language::En) => {
                "A group name is 1-100 characters without control characters or '|'.".into()
            }
            (SetError::TooMany, Language::Ja) => "指定できるのは50個までです。".into(),
            (SetError::TooMany, Language::En) => "At most 50 entries.".into(),
        }
    }
}

const MAX_ENTRIES: usize = 50;

/// The name of an application role, e.g. `sales:viewer`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppRole(CompactString);

impl AppRole {
    /// Parses an app role name.
    pub fn parse(s: &str) -> Result<Self, SetError> {
        let s = super::trim(s);
        let ok = (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
        if ok {
            Ok(AppRole(CompactString::from(s)))
        } else {
            Err(SetError::AppRoleName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_newtype_conversions!(AppRole, SetError);

/// A group a user belongs to, e.g. `営業部`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Group(CompactString);

impl Group {
    /// Parses a group name.
    pub fn parse(s: &str) -> Result<Self, SetError> {
        let long = super::longer_than(s, 100);
        let s = super::trim(s);
        let ok = !s.is_empty() && !long && !super::has_control(s, false) && !s.contains('|');
        if ok {
            Ok(Group(CompactString::from(s)))
        } else {
            Err(SetError::GroupName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_newtype_conversions!(Group, SetError);

macro_rules! name_set {
    ($(#[$doc:meta])* $name:ident, $item:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
        #[serde(try_from = "Vec<String>", into = "Vec<String>")]
        pub struct $name(Box<[$item]>);

        impl $name {
            /// Parses names, dropping duplicates; at most 50.
            pub fn parse<I>(names: I) -> Result<Self, SetError>
            where
                I: IntoIterator,
                I::Item: AsRef<str>,
            {
                // Sorted and without repeats, as a set, in one allocation of the right size
                // (gathered on the stack first), where a B-tree set takes a node of eleven
                // entries for every user (imports hold thousands).
                let mut set: SmallVec<[$item; 4]> = SmallVec::new();
                for n in names {
                    set.push($item::parse(n.as_ref())?);
                }
                // Counted as given, repeats included: the API document's `maxItems` says so.
                if set.len() > MAX_ENTRIES {
                    return Err(SetError::TooMany);
                }
                set.sort_unstable();
                set.dedup();
                let mut exact = Vec::with_capacity(set.len());
                exact.extend(set);
                Ok($name(exact.into_boxed_slice()))
            }

            /// The names, sorted.
            pub fn iter(&self) -> impl Iterator<Item = &$item> {
                self.0.iter()
            }

            /// Whether the set is empty.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl TryFrom<Vec<String>> for $name {
            type Error = SetError;
            fn try_from(v: Vec<String>) -> Result<Self, Self::Error> {
                $name::parse(v)
            }
        }

        impl From<$name> for Vec<String> {
            fn from(s: $name) -> Vec<String> {
                s.0.into_vec().into_iter().map(String::from).collect()
            }
        }
    };
}

name_set!(
    /// The application roles a user holds.
    AppRoles, AppRole
);
name_set!(
    /// The groups a user belongs to.
    Groups, Group
);

/// The app roles a tenant has defined; a user may hold only these.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoleCatalogue(BTreeSet<AppRole>);

/// Some app roles are not in the tenant's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown app roles: {}", .0.join(", "))]
pub struct UnknownAppRoles(pub Vec<String>);

impl Localized for UnknownAppRoles {
    fn code(&self) -> &'static str {
        "app_role_unknown"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => format!("未登録のアプリ権限です: {}", self.0.join(", ")),
            Language::En => format!("Unknown app roles: {}.", self.0.join(", ")),
        }
    }
}

impl RoleCatalogue {
    /// A catalogue of these roles.
    pub fn new(roles: impl IntoIterator<Item = AppRole>) -> Self {
        RoleCatalogue(roles.into_iter().collect())
    }

    /// The roles, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &AppRole> {
        self.0.iter()
    }

    /// Accepts `roles` only if every one is in the catalogue; otherwise names each unknown one.
    pub fn check(&self, roles: &AppRoles) -> Result<(), UnknownAppRoles> {
        let unknown: Vec<String> = roles
            .iter()
            .filter(|r| !self.0.contains(*r))
            .map(|r| r.as_str().to_owned())
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(UnknownAppRoles(unknown))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn app_roles_outside_the_catalogue_are_each_named() {
        let catalogue = RoleCatalogue::new([AppRole::parse("sales:viewer").unwrap()]);
        let roles = AppRoles::parse(&["sales:viewer", "hr:admin", "ops"]).unwrap();
        assert_eq!(
            catalogue.check(&roles),
            Err(UnknownAppRoles(vec!["hr:admin".into(), "ops".into()]))
        );
        assert!(
            catalogue
                .check(&AppRoles::parse(&["sales:viewer"]).unwrap())
                .is_ok()
        );
        assert!(catalogue.check(&AppRoles::default()).is_ok());
    }

    #[test]
    fn groups_drop_duplicates_and_refuse_the_separator() {
        let g = Groups::parse(&["営業部", "営業部", "東京"]).unwrap();
        assert_eq!(g.iter().count(), 2);
        assert_eq!(Groups::parse(&["a|b"]), Err(SetError::GroupName));
        let many: Vec<String> = (0..51).map(|i| format!("g{i}")).collect();
        assert_eq!(Groups::parse(&many), Err(SetError::TooMany));
    }

    proptest! {
        #[test]
        fn a_parsed_group_set_is_bounded_and_clean(names in proptest::collection::vec("\\PC{0,10}", 0..60)) {
            if let Ok(g) = Groups::parse(&names) {
                prop_assert!(g.iter().count() <= 50);
                prop_assert!(g.iter().all(|x| !x.as_str().contains('|') && !x.as_str().is_empty()));
            }
        }
    }
}
