//! What a tenant is billed on: the users billable at the last instant of a month in the
//! tenant's billing time zone, read from each user's state history, so the answer is the same
//! however late the count is taken.
//!
//! A month ends at 00:00 of the 1st of the next month, local time. The count is taken at the
//! last millisecond before that (timestamps are kept to the millisecond): a user deleted at
//! 23:59:59.999 on the last day is gone by then, one deleted at 00:00:00.000 on the 1st is
//! still there, one created at 23:59:59.999 is there.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use super::{BillingPolicy, Language, Localized, StateChange, TimeZone, UserState, ValidityWindow};

/// A calendar month, `yyyy-mm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BillingMonth {
    year: i32,
    month: u32,
}

/// The text is not a month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a month is written yyyy-mm (2000-01 to 9999-12)")]
pub struct MonthError;

impl Localized for MonthError {
    fn code(&self) -> &'static str {
        "month_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => "月は yyyy-mm の形式で指定してください（例: 2026-10）。".into(),
            Language::En => "A month is written yyyy-mm, e.g. 2026-10.".into(),
        }
    }
}

impl BillingMonth {
    /// Parses `yyyy-mm`.
    pub fn parse(s: &str) -> Result<BillingMonth, MonthError> {
        let (y, m) = s.split_once('-').ok_or(MonthError)?;
        let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(y, 4) || !digits(m, 2) {
            return Err(MonthError);
        }
        let year: i32 = y.parse().map_err(|_| MonthError)?;
        let month: u32 = m.parse().map_err(|_| MonthError)?;
        if !(2000..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(MonthError);
        }
        Ok(BillingMonth { year, month })
    }

    /// The month containing `t` in `tz`.
    pub fn containing(t: DateTime<Utc>, tz: TimeZone) -> BillingMonth {
        let local = t.with_timezone(&tz.tz());
        BillingMonth {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The last month that has ended at `now` in `tz`: the one a month-end run bills.
    pub fn last_closed(now: DateTime<Utc>, tz: TimeZone) -> BillingMonth {
        BillingMonth::containing(now, tz).previous()
    }

    /// The month before.
    pub fn previous(self) -> BillingMonth {
        if self.month == 1 {
            BillingMonth {
                year: self.year - 1,
                month: 12,
            }
        } else {
            BillingMonth {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The month `n` months earlier (never before 2000-01).
    pub fn minus(self, n: u32) -> BillingMonth {
        let index = (self.index() - i64::from(n)).max(2000 * 12);
        BillingMonth {
            year: (index / 12) as i32,
            month: (index % 12) as u32 + 1,
        }
    }

    /// Whole months from this month to `later` (0 for the same month, or an earlier one).
    pub fn months_until(self, later: BillingMonth) -> u32 {
        u32::try_from(later.index() - self.index()).unwrap_or(0)
    }

    fn index(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }

    /// The month after.
    pub fn next(self) -> BillingMonth {
        if self.month == 12 {
            BillingMonth {
                year: self.year + 1,
                month: 1,
            }
        } else {
            BillingMonth {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// When the month starts in `tz`: 00:00 of its 1st, local time (or the first instant after
    /// it, in a zone whose clocks skip midnight that day).
    pub fn start(self, tz: TimeZone) -> DateTime<Utc> {
        let midnight = NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        let zone = tz.tz();
        match zone.from_local_datetime(&midnight) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            // Midnight was skipped by a DST jump: the day starts at the first minute that exists.
            LocalResult::None => (1..=180)
                .find_map(|m| {
                    zone.from_local_datetime(&(midnight + Duration::minutes(m)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| midnight.and_utc()),
        }
    }

    /// When the month ends in `tz`: the start of the next month.
    pub fn end(self, tz: TimeZone) -> DateTime<Utc> {
        self.next().start(tz)
    }

    /// The instant the month is billed at: the last millisecond before it ends.
    pub fn billing_instant(self, tz: TimeZone) -> DateTime<Utc> {
        self.end(tz) - Duration::milliseconds(1)
    }
}

impl fmt::Display for BillingMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for BillingMonth {
    type Err = MonthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BillingMonth::parse(s)
    }
}

impl TryFrom<String> for BillingMonth {
    type Error = MonthError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        BillingMonth::parse(&s)
    }
}

impl From<BillingMonth> for String {
    fn from(m: BillingMonth) -> String {
        m.to_string()
    }
}

/// The history entry in force at `t`: the latest that took effect at or before it (`None`: the
/// user did not exist yet).
pub fn state_at(history: &[StateChange], t: DateTime<Utc>) -> Option<&StateChange> {
    history.iter().rev().find(|e| e.at <= t)
}

/// Whether a user with this history was billable at `t`: they existed (created at or before
/// `t`, not deleted by then), were not suspended, `t` lay in their validity window, and, if
/// still invited, the tenant bills invited users.
pub fn billable_at(history: &[StateChange], t: DateTime<Utc>, policy: BillingPolicy) -> bool {
    let Some(entry) = state_at(history, t) else {
        return false;
    };
    let state_counts = match entry.state {
        UserState::Active => true,
        UserState::Invited => policy.count_invited,
        UserState::Suspended | UserState::Deleted => false,
    };
    // History entries hold windows that were valid when written.
    let in_window =
        ValidityWindow::new(entry.valid_from, entry.valid_till).is_ok_and(|w| w.contains(t));
    state_counts && in_window
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn month_arithmetic_crosses_years_and_stops_at_2000() {
        let m = |s: &str| BillingMonth::parse(s).unwrap();
        assert_eq!(m("2026-03").minus(11), m("2025-04"));
        assert_eq!(m("2026-01").minus(1), m("2025-12"));
        assert_eq!(m("2000-02").minus(5), m("2000-01"));
        assert_eq!(m("2025-04").months_until(m("2026-03")), 11);
        assert_eq!(m("2026-03").months_until(m("2025-04")), 0);
    }

    fn tokyo() -> TimeZone {
        TimeZone::TOKYO
    }

    fn jst(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: i64) -> DateTime<Utc> {
        tokyo()
            .tz()
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .with_timezone(&Utc)
            + Duration::milliseconds(ms)
    }

    fn entry(at: DateTime<Utc>, state: UserState) -> StateChange {
        StateChange {
            at,
            state,
            valid_from: None,
            valid_till: None,
        }
    }

    fn october() -> BillingMonth {
        BillingMonth::parse("2026-10").unwrap()
    }

    #[test]
    fn months_parse_print_and_step() {
        let m = october();
        assert_eq!(m.to_string(), "2026-10");
        assert_eq!(m.next().to_string(), "2026-11");
        assert_eq!(
            BillingMonth::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert_eq!(
            BillingMonth::parse("2026-01")
                .unwrap()
                .previous()
                .to_string(),
            "2025-12"
        );
        for bad in [
            "2026-13",
            "2026-00",
            "26-10",
            "2026-1",
            "2026/10",
            "",
            "１２３４-10",
        ] {
            assert_eq!(BillingMonth::parse(bad), Err(MonthError), "{bad:?}");
        }
    }

    #[test]
    fn october_ends_at_midnight_of_november_first_in_tokyo() {
        assert_eq!(october().end(tokyo()), jst(2026, 11, 1, 0, 0, 0, 0));
        assert_eq!(
            october().billing_instant(tokyo()),
            jst(2026, 10, 31, 23, 59, 59, 999)
        );
        // 00:30 on 1 November in Tokyo is still 31 October in UTC: the run bills October.
        let run = jst(2026, 11, 1, 0, 30, 0, 0);
        assert_eq!(BillingMonth::last_closed(run, tokyo()), october());
    }

    #[test]
    fn a_dst_zone_gets_its_own_boundary() {
        let ny = TimeZone::parse("America/New_York").unwrap();
        // 1 November 2026 00:00 in New York is EDT (UTC-4); 1 December is EST (UTC-5).
        assert_eq!(
            october().end(ny),
            Utc.with_ymd_and_hms(2026, 11, 1, 4, 0, 0).unwrap()
        );
        assert_eq!(
            BillingMonth::parse("2026-11").unwrap().end(ny),
            Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap()
        );
    }

    #[test]
    fn boundaries_follow_the_brief() {
        let policy = BillingPolicy::default();
        let t = october().billing_instant(tokyo());
        let created = entry(jst(2026, 9, 1, 0, 0, 0, 0), UserState::Active);

        let deleted_before = [
            created.clone(),
            entry(jst(2026, 10, 31, 23, 59, 59, 999), UserState::Deleted),
        ];
        assert!(
            !billable_at(&deleted_before, t, policy),
            "deleted at 23:59:59.999"
        );
        let deleted_after = [
            created.clone(),
            entry(jst(2026, 11, 1, 0, 0, 0, 0), UserState::Deleted),
        ];
        assert!(
            billable_at(&deleted_after, t, policy),
            "deleted at 00:00:00.000 on the 1st"
        );
        let just_created = [entry(
            jst(2026, 10, 31, 23, 59, 59, 999),
            UserState::Invited,
        )];
        assert!(
            billable_at(&just_created, t, policy),
            "created at 23:59:59.999"
        );
        let too_late = [entry(jst(2026, 11, 1, 0, 0, 0, 0), UserState::Active)];
        assert!(!billable_at(&too_late, t, policy), "created on the 1st");
        let suspended = [
            created.clone(),
            entry(jst(2026, 10, 15, 0, 0, 0, 0), UserState::Suspended),
        ];
        assert!(
            !billable_at(&suspended, t, policy),
            "suspended at month end"
        );
        let window_ended = [StateChange {
            valid_till: Some(jst(2026, 10, 31, 12, 0, 0, 0)),
            ..created.clone()
        }];
        assert!(
            !billable_at(&window_ended, t, policy),
            "validity ended before month end"
        );
        let window_ends_on_first = [StateChange {
            valid_till: Some(jst(2026, 11, 1, 0, 0, 0, 0)),
            ..created
        }];
        assert!(billable_at(&window_ends_on_first, t, policy));
    }

    #[test]
    fn month_ends_and_validity_windows_hold_on_other_dates() {
        let policy = BillingPolicy::default();
        // (month, its end in UTC): a JST year end, a month end in the middle of the night in
        // UTC, and a leap February.
        for (month, end) in [
            (
                "2026-12",
                Utc.with_ymd_and_hms(2026, 12, 31, 15, 0, 0).unwrap(),
            ),
            (
                "2027-01",
                Utc.with_ymd_and_hms(2027, 1, 31, 15, 0, 0).unwrap(),
            ),
            (
                "2028-02",
                Utc.with_ymd_and_hms(2028, 2, 29, 15, 0, 0).unwrap(),
            ),
        ] {
            let m = BillingMonth::parse(month).unwrap();
            assert_eq!(m.end(tokyo()), end, "{month}");
            let last = end - Duration::milliseconds(1);
            assert_eq!(m.billing_instant(tokyo()), last, "{month}");
            assert_eq!(BillingMonth::containing(last, tokyo()), m, "{month}");
            assert_eq!(BillingMonth::containing(end, tokyo()), m.next(), "{month}");
            assert_eq!(BillingMonth::last_closed(end, tokyo()), m, "{month}");
            assert_eq!(BillingMonth::last_closed(last, tokyo()), m.previous());

            let created = entry(m.start(tokyo()), UserState::Active);
            let window = |from, till| {
                [StateChange {
                    valid_from: from,
                    valid_till: till,
                    ..created.clone()
                }]
            };
            assert!(billable_at(&window(None, Some(end)), last, policy));
            assert!(!billable_at(&window(None, Some(last)), last, policy));
            assert!(billable_at(&window(Some(last), None), last, policy));
            assert!(!billable_at(&window(Some(end), None), last, policy));
        }
    }

    #[test]
    fn invited_users_count_unless_the_policy_excludes_them() {
        let t = october().billing_instant(tokyo());
        let invited = [entry(jst(2026, 10, 1, 0, 0, 0, 0), UserState::Invited)];
        assert!(billable_at(&invited, t, BillingPolicy::default()));
        let excluded = BillingPolicy {
            count_invited: false,
        };
        assert!(!billable_at(&invited, t, excluded));
    }

    proptest! {
        #[test]
        fn a_later_change_never_alters_an_earlier_answer(
            offsets in proptest::collection::vec(0i64..100_000, 1..8),
            states in proptest::collection::vec(0u8..4, 8),
            probe in 0i64..120_000,
            extra in 0i64..50_000,
        ) {
            let base = jst(2026, 10, 1, 0, 0, 0, 0);
            let mut at = base;
            let mut history = Vec::new();
            for (i, o) in offsets.iter().enumerate() {
                at += Duration::seconds(*o);
                let state = [UserState::Invited, UserState::Active, UserState::Suspended, UserState::Deleted][states[i] as usize];
                history.push(entry(at, state));
            }
            let t = base + Duration::seconds(probe);
            let before = billable_at(&history, t, BillingPolicy::default());
            // Whatever happens after the probe (a late run sees it), the answer stays.
            let later = t.max(at) + Duration::seconds(extra + 1);
            history.push(entry(later, UserState::Deleted));
            prop_assert_eq!(before, billable_at(&history, t, BillingPolicy::default()));
        }
    }
}
