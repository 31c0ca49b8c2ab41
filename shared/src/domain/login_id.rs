//! Login ids: what a member types to sign in, distinct from the email address. Unique per
//! tenant ignoring case, so `Taro` and `taro` can't be two people.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::{Language, Localized};

/// Why a login id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginIdError {
    /// Nothing was given.
    #[error("login id is empty")]
    Empty,
    /// More than 64 characters.
    #[error("login id is longer than 64 characters")]
    TooLong,
    /// A character other than `A-Z a-z 0-9 . _ - @`.
    #[error("login id may contain only letters, digits and . _ - @")]
    Characters,
}

impl Localized for LoginIdError {
    fn code(&self) -> &'static str {
        match self {
            LoginIdError::Empty => "login_id_required",
            LoginIdError::TooLong => "login_id_too_long",
            LoginIdError::Characters => "login_id_invalid",
        }
    }
    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (LoginIdError::Empty, Language::Ja) => "ログインIDを入力してください。".into(),
            (LoginIdError::Empty, Language::En) => "A login id is required.".into(),
            (LoginIdError::TooLong, Language::Ja) => {
                "ログインIDは64文字以内で入力してください。".into()
            }
            (LoginIdError::TooLong, Language::En) => "A login id is at most 64 characters.".into(),
            (LoginIdError::Characters, Language::Ja) => {
                "ログインIDに使えるのは半角英数字と . _ - @ です。".into()
            }
            (LoginIdError::Characters, Language::En) => {
                "A login id may contain only letters, digits and . _ - @.".into()
            }
        }
    }
}

/// A login id: 1–64 of ASCII letters, digits and `. _ - @`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LoginId(CompactString);

impl LoginId {
    /// Parses a login id, trimming surrounding white space.
    pub fn parse(s: &str) -> Result<Self, LoginIdError> {
        let s = super::trim(s);
        if s.is_empty() {
            return Err(LoginIdError::Empty);
        }
        if s.len() > 64 {
            return Err(LoginIdError::TooLong);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        {
            return Err(LoginIdError::Characters);
        }
        Ok(LoginId(CompactString::from(s)))
    }

    /// The login id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity used for uniqueness: lower-cased.
    pub fn key(&self) -> std::borrow::Cow<'_, str> {
        if super::has_ascii_uppercase(&self.0) {
            std::borrow::Cow::Owned(self.0.as_str().to_ascii_lowercase())
        } else {
            // Most are lower case already: no copy.
            std::borrow::Cow::Borrowed(&self.0)
        }
    }
}

impl PartialEq for LoginId {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for LoginId {}

text_newtype_conversions!(LoginId, LoginIdError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn login_ids_accept_employee_numbers_and_dotted_names() {
        for ok in ["7", "000123", "taro.yamada", "t_yamada-2", "taro@sales"] {
            assert!(LoginId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn login_ids_refuse_blanks_spaces_and_wide_characters() {
        assert_eq!(LoginId::parse(" "), Err(LoginIdError::Empty));
        assert_eq!(LoginId::parse("taro yamada"), Err(LoginIdError::Characters));
        assert_eq!(LoginId::parse("ｔａｒｏ"), Err(LoginIdError::Characters));
        assert_eq!(LoginId::parse(&"a".repeat(65)), Err(LoginIdError::TooLong));
    }

    proptest! {
        #[test]
        fn a_parsed_login_id_is_ascii_and_bounded(s in "\\PC{0,80}") {
            if let Ok(l) = LoginId::parse(&s) {
                prop_assert!(l.as_str().is_ascii());
                prop_assert!((1..=64).contains(&l.as_str().len()));
                prop_assert!(!l.as_str().contains('#'));
            }
        }
    }
}
