//! Time zones (IANA names) and the validity window during which an account may be used and is
//! billed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{Language, Localized};

/// The text is not an IANA time zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IANA time zone name such as Asia/Tokyo")]
pub struct TimeZoneError;

impl Localized for TimeZoneError {
    fn code(&self) -> &'static str {
        "time_zone_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => "タイムゾーンは Asia/Tokyo のような IANA 名で指定してください。".into(),
            Language::En => "Time zone must be an IANA name such as Asia/Tokyo.".into(),
        }
    }
}

/// An IANA time zone, e.g. `Asia/Tokyo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// Japan Standard Time, the default for billing and display.
    pub const TOKYO: TimeZone = TimeZone(chrono_tz::Asia::Tokyo);

    /// Parses an IANA name (exact spelling, as the tz database has it).
    pub fn parse(s: &str) -> Result<Self, TimeZoneError> {
        s.trim()
            .parse::<chrono_tz::Tz>()
            .map(TimeZone)
            .map_err(|_| TimeZoneError)
    }

    /// The zone for date arithmetic.
    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }

    /// The IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Every name [`TimeZone::parse`] accepts, in the tz database's order (the API document
    /// lists them).
    pub fn names() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
    }

    /// `t` as local time in this zone, RFC 3339 with milliseconds and the offset
    /// (`2026-10-31T23:59:59.999+09:00`).
    pub fn rfc3339(self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::TOKYO
    }
}

impl FromStr for TimeZone {
    type Err = TimeZoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimeZone::parse(s)
    }
}

impl TryFrom<String> for TimeZone {
    type Error = TimeZoneError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TimeZone::parse(&s)
    }
}

impl From<TimeZone> for String {
    fn from(t: TimeZone) -> String {
        t.name().to_owned()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validity window whose end is not after its start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("valid_till must be after valid_from")]
pub struct ValidityError;

impl Localized for ValidityError {
    fn code(&self) -> &'static str {
        "validity_window_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => "有効期限（終了）は有効期限（開始）より後にしてください。".into(),
            Language::En => "valid_till must be after valid_from.".into(),
        }
    }
}

/// When an account may be used: from `from` (inclusive) until `till` (exclusive); either end
/// may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValidityWindow {
    from: Option<DateTime<Utc>>,
    till: Option<DateTime<Utc>>,
}

impl ValidityWindow {
    /// A window; refused if both ends are given and `till` is not after `from`.
    pub fn new(
        from: Option<DateTime<Utc>>,
        till: Option<DateTime<Utc>>,
    ) -> Result<Self, ValidityError> {
        match (from, till) {
            (Some(f), Some(t)) if t <= f => Err(ValidityError),
            _ => Ok(ValidityWindow { from, till }),
        }
    }

    /// Always valid.
    pub fn unbounded() -> Self {
        ValidityWindow::default()
    }

    /// The start, if any.
    pub fn from(&self) -> Option<DateTime<Utc>> {
        self.from
    }

    /// The end, if any.
    pub fn till(&self) -> Option<DateTime<Utc>> {
        self.till
    }

    /// Whether the instant lies in the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| f <= t) && self.till.is_none_or(|e| t < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    #[test]
    fn iana_names_parse_and_others_do_not() {
        assert_eq!(TimeZone::parse("Asia/Tokyo").unwrap().name(), "Asia/Tokyo");
        assert!(TimeZone::parse("America/New_York").is_ok());
        assert_eq!(TimeZone::parse("JST+9"), Err(TimeZoneError));
        assert_eq!(TimeZone::parse("Mars/Olympus"), Err(TimeZoneError));
    }

    #[test]
    fn a_window_includes_its_start_and_excludes_its_end() {
        let f = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
        let w = ValidityWindow::new(Some(f), Some(t)).unwrap();
        assert!(w.contains(f));
        assert!(!w.contains(t));
        assert!(!w.contains(f - chrono::Duration::milliseconds(1)));
        assert_eq!(ValidityWindow::new(Some(t), Some(f)), Err(ValidityError));
        assert_eq!(ValidityWindow::new(Some(t), Some(t)), Err(ValidityError));
        assert!(ValidityWindow::unbounded().contains(t));
    }

    proptest! {
        #[test]
        fn a_built_window_always_starts_before_it_ends(a in 0i64..4_000_000_000, b in 0i64..4_000_000_000) {
            let fa = Utc.timestamp_opt(a, 0).unwrap();
            let fb = Utc.timestamp_opt(b, 0).unwrap();
            match ValidityWindow::new(Some(fa), Some(fb)) {
                Ok(w) => prop_assert!(w.from().unwrap() < w.till().unwrap()),
                Err(_) => prop_assert!(b <= a),
            }
        }
    }
}
