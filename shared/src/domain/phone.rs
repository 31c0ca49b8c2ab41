//! Phone numbers as people write them in Japan and elsewhere: `03-1234-5678`,
//! `+81 90 1234 5678`, `(03) 1234-5678`, full-width digits from Excel included.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::{Language, Localized};

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// A character other than digits, spaces, `-`, `(`, `)` and a leading `+`.
    #[error("phone number may contain only digits, spaces, '-', '(', ')' and a leading '+'")]
    Characters,
    /// Fewer than 6 or more than 15 digits (E.164's maximum).
    #[error("phone number must have 6 to 15 digits")]
    Digits,
}

impl Localized for PhoneError {
    fn code(&self) -> &'static str {
        match self {
            PhoneError::Characters => "phone_invalid",
            PhoneError::Digits => "phone_length",
        }
    }
    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (PhoneError::Characters, Language::Ja) => {
                "電話番号に使えるのは数字・空白・ハイフン・括弧・先頭の + です。".into()
            }
            (PhoneError::Characters, Language::En) => {
                "A phone number may contain only digits, spaces, '-', '(', ')' and a leading '+'."
                    .into()
            }
            (PhoneError::Digits, Language::Ja) => {
                "電話番号は6〜15桁の数字で入力してください。".into()
            }
            (PhoneError::Digits, Language::En) => "A phone number has 6 to 15 digits.".into(),
        }
    }
}

/// A phone number, kept as written after NFKC normalisation (full-width digits become ASCII).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(CompactString);

impl Phone {
    /// Parses a phone number.
    pub fn parse(s: &str) -> Result<Self, PhoneError> {
        let s = super::trim(s);
        // NFKC leaves ASCII as it is.
        let s: CompactString = if s.is_ascii() {
            CompactString::from(s)
        } else {
            s.nfkc().collect()
        };
        let body = s.as_bytes();
        let body = body.strip_prefix(b"+").unwrap_or(body);
        // Bytes: anything outside ASCII is refused either way.
        if !body
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'(' | b')'))
        {
            return Err(PhoneError::Characters);
        }
        let digits = body.iter().filter(|b| b.is_ascii_digit()).count();
        if !(6..=15).contains(&digits) {
            return Err(PhoneError::Digits);
        }
        Ok(Phone(s))
    }

    /// The number as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_newtype_conversions!(Phone, PhoneError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn japanese_and_international_numbers_are_accepted() {
        assert_eq!(
            Phone::parse("03-1234-5678").unwrap().as_str(),
            "03-1234-5678"
        );
        assert_eq!(
            Phone::parse("０９０－１２３４－５６７８").unwrap().as_str(),
            "090-1234-5678"
        );
        assert!(Phone::parse("+81 90 1234 5678").is_ok());
        assert!(Phone::parse("(03) 1234-5678").is_ok());
    }

    #[test]
    fn letters_and_wrong_lengths_are_refused() {
        assert_eq!(Phone::parse("03-1234-567a"), Err(PhoneError::Characters));
        assert_eq!(Phone::parse("1+2345678"), Err(PhoneError::Characters));
        assert_eq!(Phone::parse("12345"), Err(PhoneError::Digits));
        assert_eq!(Phone::parse("1234567890123456"), Err(PhoneError::Digits));
    }

    proptest! {
        #[test]
        fn a_parsed_phone_has_six_to_fifteen_digits(s in "\\PC{0,30}") {
            if let Ok(p) = Phone::parse(&s) {
                let n = p.as_str().chars().filter(char::is_ascii_digit).count();
                prop_assert!((6..=15).contains(&n));
            }
        }
    }
}
