//! Email addresses: a pragmatic subset of RFC 5321 that real mail systems deliver to, compared
//! case-insensitively (the identity used for uniqueness is the lower-cased address).

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::{Language, Localized};

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing was given.
    #[error("email is empty")]
    Empty,
    /// Longer than 254 characters (RFC 5321 path limit less the brackets).
    #[error("email is longer than 254 characters")]
    TooLong,
    /// Not of the form `local@domain.tld`.
    #[error("email is not a valid address")]
    Syntax,
}

impl Localized for EmailError {
    fn code(&self) -> &'static str {
        match self {
            EmailError::Empty => "email_required",
            EmailError::TooLong => "email_too_long",
            EmailError::Syntax => "email_invalid",
        }
    }
    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (EmailError::Empty, Language::Ja) => "メールアドレスを入力してください。".into(),
            (EmailError::Empty, Language::En) => "An email address is required.".into(),
            (EmailError::TooLong, Language::Ja) => {
                "メールアドレスは254文字以内で入力してください。".into()
            }
            (EmailError::TooLong, Language::En) => {
                "An email address is at most 254 characters.".into()
            }
            (EmailError::Syntax, Language::Ja) => "メールアドレスの形式が正しくありません。".into(),
            (EmailError::Syntax, Language::En) => "The email address is not valid.".into(),
        }
    }
}

/// A deliverable email address. Keeps the spelling it was given; equality and [`Email::key`]
/// ignore case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(CompactString);

const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";

impl Email {
    /// Parses an address, trimming surrounding white space.
    ///
    /// ```
    /// use rollcall::domain::Email;
    /// let e = Email::parse(" Taro.Yamada@Example.co.jp ").unwrap();
    /// assert_eq!(e.as_str(), "Taro.Yamada@Example.co.jp");
    /// assert_eq!(e.key(), "taro.yamada@example.co.jp");
    /// ```
    pub fn parse(s: &str) -> Result<Self, EmailError> {
        let s = super::trim(s);
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if super::longer_than(s, 254) {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError::Syntax)?;
        if !valid_local(local) || !valid_domain(domain) {
            return Err(EmailError::Syntax);
        }
        Ok(Email(CompactString::from(s)))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity used for uniqueness: the address lower-cased.
    pub fn key(&self) -> std::borrow::Cow<'_, str> {
        if super::has_ascii_uppercase(&self.0) {
            std::borrow::Cow::Owned(self.0.as_str().to_ascii_lowercase())
        } else {
            // Most are lower case already: no copy.
            std::borrow::Cow::Borrowed(&self.0)
        }
    }
}

fn valid_local(local: &str) -> bool {
    let bytes = local.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0] != b'.'
        && bytes[bytes.len() - 1] != b'.'
        && !bytes.windows(2).any(|w| w == b"..")
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || LOCAL_SPECIALS.as_bytes().contains(b))
}

fn valid_domain(domain: &str) -> bool {
    // Label by label, on the bytes, without collecting them: every NEW row of an import has
    // an address.
    let mut labels = 0;
    let mut last: &[u8] = b"";
    for label in domain.as_bytes().split(|&b| b == b'.') {
        let ok = (1..=63).contains(&label.len())
            && !label.starts_with(b"-")
            && !label.ends_with(b"-")
            && label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && domain.len() <= 253 && last.len() >= 2 && !last.iter().all(u8::is_ascii_digit)
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for Email {}

text_newtype_conversions!(Email, EmailError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_addresses_are_accepted() {
        for ok in [
            "a@b.co",
            "taro+tag@example.co.jp",
            "o'brien@mail.example.com",
            "x_y-z@sub-domain.example.org",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused_with_their_reason() {
        assert_eq!(Email::parse("  "), Err(EmailError::Empty));
        for bad in [
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "a.@example.com",
            "a@example-.com",
            "a@example..com",
            "a@.example.com",
            "a@example.123",
            "a b@example.com",
            "山田@example.jp",
            "a@exa_mple.com",
            "a@b@c.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Syntax), "{bad}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(200));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn addresses_differing_only_in_case_are_the_same_identity() {
        let a = Email::parse("Taro@Example.com").unwrap();
        let b = Email::parse("taro@EXAMPLE.COM").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.as_str(), "Taro@Example.com");
    }

    proptest! {
        #[test]
        fn a_parsed_email_is_bounded_and_its_key_is_lowercase(s in "\\PC{0,300}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert!(e.as_str().chars().count() <= 254);
                prop_assert_eq!(e.key(), e.as_str().to_ascii_lowercase());
                prop_assert_eq!(e.as_str().matches('@').count(), 1);
            }
        }

        #[test]
        fn generated_valid_addresses_parse(local in "[a-z0-9]{1,20}", domain in "[a-z]{1,20}", tld in "[a-z]{2,6}") {
            let addr = format!("{local}@{domain}.{tld}");
            prop_assert!(Email::parse(&addr).is_ok());
        }
    }
}
