//! Dates and times in import files: `yyyy/mm/dd hh:MM` in UTC as exports write them, read
//! byte by byte, and the other ways spreadsheets rewrite them, read generally.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::domain::{Language, Localized, trim};

/// The text is not a date and time as import files write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a date and time like 2026/04/01 09:00")]
pub struct DateTimeError;

impl Localized for DateTimeError {
    fn code(&self) -> &'static str {
        "datetime_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => "日時は 2026/04/01 09:00 の形式（UTC）で入力してください。".into(),
            Language::En => "Write the time as 2026/04/01 09:00 (UTC).".into(),
        }
    }
}

/// Reads `yyyy/mm/dd hh:mm` in UTC, as import files and exports write it. Also accepted, since
/// spreadsheets rewrite dates as they like: `-` between date parts, no leading zeros
/// (`2026/4/1 9:00`), seconds with an optional fraction, `T` before the time, or no time
/// (midnight).
pub fn parse_datetime(s: &str) -> Result<DateTime<Utc>, DateTimeError> {
    let s = trim(s);
    match exported_datetime(s.as_bytes()) {
        Some(t) => Ok(t),
        None => any_datetime(s),
    }
}

/// `yyyy/mm/dd hh:mm` exactly (`-` and `T` allowed where [`any_datetime`] allows them), read
/// byte by byte: the form exports write and most files keep. `None` for anything else,
/// including dates that don't exist, which [`any_datetime`] then refuses.
fn exported_datetime(s: &[u8]) -> Option<DateTime<Utc>> {
    let &[
        y0,
        y1,
        y2,
        y3,
        s1,
        m0,
        m1,
        s2,
        d0,
        d1,
        b' ' | b'T',
        h0,
        h1,
        b':',
        n0,
        n1,
    ] = s
    else {
        return None;
    };
    if !matches!(s1, b'/' | b'-') || !matches!(s2, b'/' | b'-') {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(
        number(&[y0, y1, y2, y3])? as i32,
        number(&[m0, m1])?,
        number(&[d0, d1])?,
    )?;
    let time = NaiveTime::from_hms_opt(number(&[h0, h1])?, number(&[n0, n1])?, 0)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// Every form [`parse_datetime`] accepts, from trimmed text.
fn any_datetime(s: &str) -> Result<DateTime<Utc>, DateTimeError> {
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(trim(t))),
        None => (s, None),
    };
    let mut parts = date.split(['/', '-']);
    let mut number = |lengths: std::ops::RangeInclusive<usize>| -> Result<u32, DateTimeError> {
        let p = parts.next().ok_or(DateTimeError)?;
        if !lengths.contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DateTimeError);
        }
        p.parse().map_err(|_| DateTimeError)
    };
    let (y, m, d) = (number(4..=4)?, number(1..=2)?, number(1..=2)?);
    if parts.next().is_some() {
        return Err(DateTimeError);
    }
    let date = NaiveDate::from_ymd_opt(y as i32, m, d).ok_or(DateTimeError)?;
    let time = match time {
        None => NaiveTime::MIN,
        Some(t) => parse_time(t)?,
    };
    Ok(NaiveDateTime::new(date, time).and_utc())
}

/// Reads `h:mm`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff…`.
fn parse_time(t: &str) -> Result<NaiveTime, DateTimeError> {
    fn digits(s: &str, lengths: std::ops::RangeInclusive<usize>) -> Result<u32, DateTimeError> {
        if !lengths.contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DateTimeError);
        }
        s.parse().map_err(|_| DateTimeError)
    }
    let mut parts = t.split(':');
    let h = digits(parts.next().ok_or(DateTimeError)?, 1..=2)?;
    let m = digits(parts.next().ok_or(DateTimeError)?, 2..=2)?;
    let (s, nanos) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, fraction) = sec.split_once('.').unwrap_or((sec, ""));
            let nanos = if fraction.is_empty() {
                if sec.contains('.') {
                    return Err(DateTimeError);
                }
                0
            } else {
                let f = digits(fraction, 1..=9)?;
                f * 10u32.pow(9 - fraction.len() as u32)
            };
            (digits(whole, 2..=2)?, nanos)
        }
    };
    if parts.next().is_some() {
        return Err(DateTimeError);
    }
    NaiveTime::from_hms_nano_opt(h, m, s, nanos).ok_or(DateTimeError)
}

/// Writes a time as [`parse_datetime`] reads it: `yyyy/mm/dd hh:mm`, with seconds (and
/// milliseconds) only when they are not zero, so that an export re-imports unchanged.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    if t.nanosecond() != 0 {
        t.format("%Y/%m/%d %H:%M:%S%.3f").to_string()
    } else if t.second() != 0 {
        t.format("%Y/%m/%d %H:%M:%S").to_string()
    } else {
        t.format("%Y/%m/%d %H:%M").to_string()
    }
}

/// Users created by the tests' files: tenant `acme`, created 2026-11-21 03:00 UTC, fresh ids.
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    #[test]
    fn dates_are_read_as_spreadsheets_rewrite_them() {
        let t = Utc.with_ymd_and_hms(2026, 4, 1, 9, 5, 0).unwrap();
        for s in [
            "2026/04/01 09:05",
            "2026/4/1 9:05",
            "2026-04-01 09:05",
            "2026-04-01T09:05:00",
        ] {
            assert_eq!(parse_datetime(s), Ok(t), "{s}");
        }
        assert_eq!(
            parse_datetime("2026/04/01"),
            Ok(Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap())
        );
        for bad in [
            "2026/02/30",
            "26/4/1",
            "2026/04/01 25:00",
            "tomorrow",
            "2026/04/01/02",
        ] {
            assert_eq!(parse_datetime(bad), Err(DateTimeError), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn the_byte_by_byte_reading_agrees_with_the_general_one(s in "[0-9]{4}[/-](0[0-9]|1[0-3])[/-]([0-2][0-9]|3[0-2])[ T]([01][0-9]|2[0-5]):[0-6][0-9]") {
            let general = any_datetime(&s);
            match exported_datetime(s.as_bytes()) {
                Some(t) => prop_assert_eq!(Ok(t), general),
                None => prop_assert_eq!(general, Err(DateTimeError)),
            }
        }

        #[test]
        fn written_times_read_back_exactly(ms in 0i64..4_102_444_800_000) {
            let t = DateTime::from_timestamp_millis(ms).unwrap();
            prop_assert_eq!(parse_datetime(&format_datetime(t)), Ok(t));
        }

    }
}
