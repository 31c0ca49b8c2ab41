//! Identifiers: tenants (chosen by people, so validated), users and invitations (ULIDs, so
//! that sorting by id is sorting by creation).

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use ulid::Ulid;

use super::{Language, Localized};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A tenant id must be 2–63 of `a-z`, `0-9` and `-`, starting with a letter or digit.
    #[error(
        "tenant id must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
    )]
    Tenant,
    /// A user or invitation id is not a ULID.
    #[error("not a valid id")]
    Ulid,
}

impl Localized for IdError {
    fn code(&self) -> &'static str {
        match self {
            IdError::Tenant => "tenant_id_invalid",
            IdError::Ulid => "id_invalid",
        }
    }
    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (IdError::Tenant, Language::Ja) => {
                "テナントIDは英小文字・数字・ハイフンの2〜63文字で、英数字で始めてください。".into()
            }
            (IdError::Tenant, Language::En) => {
                "A tenant id is 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit.".into()
            }
            (IdError::Ulid, Language::Ja) => "IDの形式が正しくありません。".into(),
            (IdError::Ulid, Language::En) => "The id is not valid.".into(),
        }
    }
}

/// A tenant: one customer organisation. Lower-case, DNS-label-like, never contains `#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(CompactString);

impl TenantId {
    /// Parses a tenant id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok_len = (2..=63).contains(&s.len());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_start = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok_len && ok_chars && ok_start {
            Ok(TenantId(CompactString::from(s)))
        } else {
            Err(IdError::Tenant)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_newtype_conversions!(TenantId, IdError);

impl FromStr for TenantId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::parse(s)
    }
}

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Ulid);

        impl $name {
            /// A new id for something created now.
            pub fn generate() -> Self {
                $name(Ulid::new())
            }

            /// Parses the 26-character Crockford base32 form (case-insensitive).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                Ulid::from_string(s).map($name).map_err(|_| IdError::Ulid)
            }

            /// The id made of `ulid` (for ids derived from something else, such as an import
            /// job and a line, so that redoing the work gives the same ids).
            pub fn from_ulid(ulid: Ulid) -> Self {
                $name(ulid)
            }

            /// The ULID.
            pub fn ulid(self) -> Ulid {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

ulid_id!(
    /// A user, unique within its tenant; a ULID, so ids sort by creation time.
    UserId
);
ulid_id!(
    /// One invitation sent to a user.
    InvitationId
);
ulid_id!(
    /// One bulk-import job: an uploaded file and what became of it.
    ImportId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tenant_ids_accept_lowercase_labels_and_refuse_the_rest() {
        assert!(TenantId::parse("demo").is_ok());
        assert!(TenantId::parse("acme-co-2").is_ok());
        for bad in [
            "",
            "a",
            "Demo",
            "-demo",
            "de mo",
            "de#mo",
            "でも",
            &"a".repeat(64),
        ] {
            assert_eq!(TenantId::parse(bad), Err(IdError::Tenant), "{bad:?}");
        }
    }

    #[test]
    fn user_ids_round_trip_through_text_and_refuse_garbage() {
        let id = UserId::generate();
        assert_eq!(UserId::parse(&id.to_string()), Ok(id));
        assert_eq!(UserId::parse(&id.to_string().to_lowercase()), Ok(id));
        assert_eq!(UserId::parse("not-a-ulid"), Err(IdError::Ulid));
    }

    proptest! {
        #[test]
        fn a_parsed_tenant_id_never_contains_a_key_separator(s in "\\PC{0,70}") {
            if let Ok(t) = TenantId::parse(&s) {
                prop_assert!(!t.as_str().contains('#'));
                prop_assert_eq!(t.as_str(), s.as_str());
            }
        }
    }
}
