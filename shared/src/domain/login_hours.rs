//! Login hours (a member console's ログインサイクル): the weekdays and the time of day, in the
//! user's time zone, when a user may sign in. Outside them sign-in, refresh and rollcall's API
//! refuse the user.
//!
//! The text form, in the API and in CSV cells: days, a space, a time range.
//!
//! - days: day names or ranges separated by `,`: `Mon-Fri`, `Mon,Wed,Fri`, `Sat-Sun`; in
//!   Japanese `月-金`, `月,水,金`, `土・日` (`曜`/`曜日` may follow, `〜` or `~` may stand for
//!   `-`, `、` or `・` for `,`); a range may wrap (`Fri-Mon`);
//! - time: `HH:MM-HH:MM`, 24-hour, the end after the start up to `24:00`; an end before the start
//!   runs past midnight into the next day (`22:00-06:00`: from 22:00 on each listed day to 06:00
//!   the day after).
//!
//! Full-width digits and letters are read as their ASCII forms (NFKC), case is ignored. The
//! written form is canonical: `Mon-Fri 08:00-20:00`.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::{Language, Localized};

const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const JAPANESE: [char; 7] = ['月', '火', '水', '木', '金', '土', '日'];

/// Why a login-hours text was refused, naming the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginHoursError {
    /// Not "days time".
    #[error("login hours are days and a time range, e.g. \"Mon-Fri 08:00-20:00\"")]
    Shape,
    /// A day name that is not one.
    #[error("{0:?} is not a day (Mon..Sun or 月..日)")]
    Day(String),
    /// A time that is not HH:MM within the day.
    #[error("{0:?} is not a time (HH:MM, 00:00 to 24:00)")]
    Time(String),
    /// The range is empty.
    #[error("the time range starts where it ends")]
    Empty,
}

impl Localized for LoginHoursError {
    fn code(&self) -> &'static str {
        "login_hours_invalid"
    }

    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (LoginHoursError::Shape, Language::Ja) => {
                "ログイン可能時間は「曜日 時刻範囲」で指定してください(例: 月-金 08:00-20:00)。"
                    .into()
            }
            (LoginHoursError::Shape, Language::En) => {
                "Login hours are days and a time range, e.g. \"Mon-Fri 08:00-20:00\".".into()
            }
            (LoginHoursError::Day(d), Language::Ja) => {
                format!("「{d}」は曜日ではありません(月〜日 または Mon〜Sun)。")
            }
            (LoginHoursError::Day(d), Language::En) => {
                format!("\"{d}\" is not a day (Mon to Sun, or 月 to 日).")
            }
            (LoginHoursError::Time(t), Language::Ja) => {
                format!("「{t}」は時刻ではありません(HH:MM、00:00〜24:00)。")
            }
            (LoginHoursError::Time(t), Language::En) => {
                format!("\"{t}\" is not a time (HH:MM, 00:00 to 24:00).")
            }
            (LoginHoursError::Empty, Language::Ja) => "開始時刻と終了時刻が同じです。".into(),
            (LoginHoursError::Empty, Language::En) => "The time range starts where it ends.".into(),
        }
    }
}

/// When a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LoginHours {
    /// Bit `i` set: day `i` (Monday = 0) is listed.
    days: u8,
    /// Minutes after midnight.
    start: u16,
    /// Minutes after midnight, 1..=1440; at or before `start`: past midnight.
    end: u16,
}

const FULL_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn day(name: &str) -> Result<u8, LoginHoursError> {
    let n = name.trim();
    let stripped = n.trim_end_matches("曜日").trim_end_matches('曜');
    let mut chars = stripped.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && let Some(i) = JAPANESE.iter().position(|j| *j == c)
    {
        return Ok(i as u8);
    }
    let lower = n.to_ascii_lowercase();
    (0..7)
        .find(|&i| lower == NAMES[i].to_ascii_lowercase() || lower == FULL_NAMES[i])
        .map(|i| i as u8)
        .ok_or_else(|| LoginHoursError::Day(n.to_owned()))
}

fn minutes(t: &str, end: bool) -> Result<u16, LoginHoursError> {
    let bad = || LoginHoursError::Time(t.to_owned());
    let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    let total = h * 60 + m;
    let ok = m < 60 && (total < 1440 || (end && total == 1440));
    if ok { Ok(total) } else { Err(bad()) }
}

impl LoginHours {
    /// Parses the text form (see the module documentation).
    ///
    /// ```
    /// use rollcall::domain::LoginHours;
    /// let h = LoginHours::parse("月〜金 ０８:００-２０:００").unwrap();
    /// assert_eq!(h.to_string(), "Mon-Fri 08:00-20:00");
    /// assert!(LoginHours::parse("Mon-Fri").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<LoginHours, LoginHoursError> {
        let text: String = s
            .nfkc()
            .map(|c| match c {
                '〜' | '~' => '-',
                '、' | '・' => ',',
                c => c,
            })
            .collect();
        let mut parts = text.split_whitespace();
        let (Some(days_text), Some(times), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LoginHoursError::Shape);
        };
        let mut days = 0u8;
        for item in days_text.split(',') {
            match item.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        days |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days |= 1 << day(item)?,
            }
        }
        let (start, end) = times.split_once('-').ok_or(LoginHoursError::Shape)?;
        let (start, end) = (minutes(start, false)?, minutes(end, true)?);
        if start == end || (start == 0 && end == 0) {
            return Err(LoginHoursError::Empty);
        }
        Ok(LoginHours { days, start, end })
    }

    /// Parses the API's form only: English day names as written (`Mon`..`Sun`), `,` and `-`
    /// between them, one space, `HH:MM-HH:MM` with two-digit hours. The OpenAPI document
    /// states this grammar as a pattern; people's spellings (Japanese, full-width, `8:00`)
    /// are for CSV files, which [`LoginHours::parse`] reads.
    pub fn parse_exact(s: &str) -> Result<LoginHours, LoginHoursError> {
        let Some((days, times)) = s.split_once(' ') else {
            return Err(LoginHoursError::Shape);
        };
        for item in days.split(',') {
            for d in item.split('-') {
                if !NAMES.contains(&d) {
                    return Err(LoginHoursError::Day(d.to_owned()));
                }
            }
            if item.split('-').count() > 2 {
                return Err(LoginHoursError::Day(item.to_owned()));
            }
        }
        let Some((start, end)) = times.split_once('-') else {
            return Err(LoginHoursError::Shape);
        };
        for t in [start, end] {
            let b = t.as_bytes();
            let shaped =
                b.len() == 5 && b[2] == b':' && t.bytes().filter(u8::is_ascii_digit).count() == 4;
            if !shaped {
                return Err(LoginHoursError::Time(t.to_owned()));
            }
        }
        LoginHours::parse(s)
    }

    /// Whether `at` falls inside these hours in time zone `tz`.
    pub fn allows(&self, at: DateTime<Utc>, tz: chrono_tz::Tz) -> bool {
        let local = at.with_timezone(&tz);
        let weekday = local.weekday().num_days_from_monday() as u8;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let listed = |d: u8| self.days & (1 << d) != 0;
        if self.start < self.end {
            listed(weekday) && self.start <= minute && minute < self.end
        } else {
            // Past midnight: from `start` on a listed day, or before `end` the day after one.
            (listed(weekday) && minute >= self.start)
                || (listed((weekday + 6) % 7) && minute < self.end)
        }
    }
}

impl fmt::Display for LoginHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Runs of consecutive days, Monday first: Mon-Fri, Mon,Wed,Fri, Sat-Sun.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for d in 0..7 {
            if self.days & (1 << d) == 0 {
                continue;
            }
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == d => *end = d,
                _ => runs.push((d, d)),
            }
        }
        let days: Vec<String> = runs
            .iter()
            .map(|&(a, b)| match b - a {
                0 => NAMES[a].to_owned(),
                1 => format!("{},{}", NAMES[a], NAMES[b]),
                _ => format!("{}-{}", NAMES[a], NAMES[b]),
            })
            .collect();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02}",
            days.join(","),
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl TryFrom<String> for LoginHours {
    type Error = LoginHoursError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        LoginHours::parse(&s)
    }
}

impl From<LoginHours> for String {
    fn from(h: LoginHours) -> String {
        h.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn tokyo(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Tokyo
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_forms_people_write_read_as_one_canonical_form() {
        for (written, canonical) in [
            ("Mon-Fri 08:00-20:00", "Mon-Fri 08:00-20:00"),
            ("mon-fri 8:00-20:00", "Mon-Fri 08:00-20:00"),
            ("Monday-Friday 08:00-20:00", "Mon-Fri 08:00-20:00"),
            ("月-金 08:00-20:00", "Mon-Fri 08:00-20:00"),
            ("月曜〜金曜 08:00〜20:00", "Mon-Fri 08:00-20:00"),
            (
                "月曜日～金曜日　０８:００～２０:００",
                "Mon-Fri 08:00-20:00",
            ),
            ("Mon,Wed,Fri 09:00-17:30", "Mon,Wed,Fri 09:00-17:30"),
            ("土・日 00:00-24:00", "Sat,Sun 00:00-24:00"),
            ("Fri-Mon 22:00-06:00", "Mon,Fri-Sun 22:00-06:00"),
        ] {
            let h = LoginHours::parse(written).unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(h.to_string(), canonical, "{written}");
            assert_eq!(
                LoginHours::parse(canonical),
                Ok(h),
                "round trip of {canonical}"
            );
        }
    }

    #[test]
    fn each_mistake_is_named() {
        assert_eq!(LoginHours::parse("Mon-Fri"), Err(LoginHoursError::Shape));
        assert_eq!(LoginHours::parse(""), Err(LoginHoursError::Shape));
        assert_eq!(
            LoginHours::parse("Mon-Fry 08:00-20:00"),
            Err(LoginHoursError::Day("Fry".into()))
        );
        assert_eq!(
            LoginHours::parse("Mon 8-20"),
            Err(LoginHoursError::Time("8".into())),
            "no minutes"
        );
        assert_eq!(
            LoginHours::parse("Mon 08:00-24:30"),
            Err(LoginHoursError::Time("24:30".into()))
        );
        assert_eq!(
            LoginHours::parse("Mon 24:00-08:00"),
            Err(LoginHoursError::Time("24:00".into()))
        );
        assert_eq!(
            LoginHours::parse("Mon 08:00-08:00"),
            Err(LoginHoursError::Empty)
        );
    }

    #[test]
    fn the_api_takes_only_the_exact_form() {
        assert!(LoginHours::parse_exact("Mon-Fri 08:00-20:00").is_ok());
        assert!(LoginHours::parse_exact("Mon,Wed,Fri-Sun 22:00-06:00").is_ok());
        for loose in [
            "mon-fri 08:00-20:00",
            "月-金 08:00-20:00",
            "Mon-Fri 8:00-20:00",
            "Mon-Fri  08:00-20:00",
            "Monday 08:00-20:00",
            "Mon-Tue-Wed 08:00-20:00",
        ] {
            assert!(LoginHours::parse_exact(loose).is_err(), "{loose}");
        }
    }

    #[test]
    fn weekdays_and_times_are_the_users_own() {
        let h = LoginHours::parse("Mon-Fri 08:00-20:00").unwrap();
        let tz = chrono_tz::Asia::Tokyo;
        // 2030-01-07 is a Monday.
        assert!(!h.allows(tokyo(2030, 1, 7, 7, 59), tz));
        assert!(h.allows(tokyo(2030, 1, 7, 8, 0), tz));
        assert!(h.allows(tokyo(2030, 1, 11, 19, 59), tz), "Friday evening");
        assert!(!h.allows(tokyo(2030, 1, 11, 20, 0), tz));
        assert!(!h.allows(tokyo(2030, 1, 12, 12, 0), tz), "Saturday");
        // Monday 08:30 in Tokyo is Sunday 23:30 in UTC: the user's zone decides.
        assert!(!h.allows(tokyo(2030, 1, 7, 8, 30), chrono_tz::UTC));
    }

    #[test]
    fn a_range_past_midnight_runs_into_the_next_day() {
        let h = LoginHours::parse("Fri 22:00-06:00").unwrap();
        let tz = chrono_tz::Asia::Tokyo;
        assert!(h.allows(tokyo(2030, 1, 11, 23, 0), tz), "Friday night");
        assert!(h.allows(tokyo(2030, 1, 12, 5, 59), tz), "early Saturday");
        assert!(!h.allows(tokyo(2030, 1, 12, 6, 0), tz));
        assert!(
            !h.allows(tokyo(2030, 1, 11, 5, 0), tz),
            "early Friday belongs to Thursday"
        );
    }
}
