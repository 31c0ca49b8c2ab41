//! The two languages rollcall speaks to people in: Japanese and English.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::Localized;

/// A language for mail, messages and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Japanese (`ja`).
    Ja,
    /// English (`en`).
    #[default]
    En,
}

impl Language {
    /// The BCP 47 tag: `ja` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Ja => "ja",
            Language::En => "en",
        }
    }

    /// Picks the preferred supported language from an HTTP `Accept-Language` header
    /// (RFC 9110 §12.5.4), honouring quality values. `None` when neither is acceptable.
    ///
    /// ```
    /// use rollcall::domain::Language;
    /// assert_eq!(Language::from_accept_language("en;q=0.5, ja-JP"), Some(Language::Ja));
    /// ```
    pub fn from_accept_language(header: &str) -> Option<Language> {
        let mut best: Option<(Language, f32)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "ja" => Language::Ja,
                "en" => Language::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((lang, q));
            }
        }
        best.map(|(l, _)| l)
    }
}

impl Language {
    /// The first supported language of an OpenID Connect `ui_locales` parameter: BCP 47 tags
    /// separated by spaces, most preferred first (OIDC Core §3.1.2.1).
    ///
    /// ```
    /// use rollcall::domain::Language;
    /// assert_eq!(Language::from_ui_locales("fr-CA ja-JP en"), Some(Language::Ja));
    /// assert_eq!(Language::from_ui_locales("fr"), None);
    /// ```
    pub fn from_ui_locales(locales: &str) -> Option<Language> {
        locales.split(' ').find_map(|tag| {
            match tag
                .split('-')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
                .as_str()
            {
                "ja" => Some(Language::Ja),
                "en" => Some(Language::En),
                _ => None,
            }
        })
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is neither `ja` nor `en`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("language must be ja or en")]
pub struct LanguageError;

impl Localized for LanguageError {
    fn code(&self) -> &'static str {
        "language_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => "言語は ja または en を指定してください。".into(),
            Language::En => "Language must be ja or en.".into(),
        }
    }
}

impl FromStr for Language {
    type Err = LanguageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = super::trim(s);
        [Language::Ja, Language::En]
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or(LanguageError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_prefers_the_highest_quality_supported_tag() {
        assert_eq!(
            Language::from_accept_language("fr, en;q=0.8, ja;q=0.9"),
            Some(Language::Ja)
        );
        assert_eq!(
            Language::from_accept_language("ja;q=0, en"),
            Some(Language::En)
        );
        assert_eq!(Language::from_accept_language("de, fr"), None);
        assert_eq!(Language::from_accept_language(""), None);
    }

    #[test]
    fn languages_parse_case_insensitively_and_reject_others() {
        assert_eq!(" JA ".parse::<Language>(), Ok(Language::Ja));
        assert_eq!("en".parse::<Language>(), Ok(Language::En));
        assert_eq!("jp".parse::<Language>(), Err(LanguageError));
    }
}
