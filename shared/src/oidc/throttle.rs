//! Brute-force bounds on sign-in (OWASP ASVS 5.0 §6.3.1): per account, after
//! [`FREE_FAILURES`] failures each further attempt must wait a delay that doubles from one
//! second to fifteen minutes, and a success resets it (Amazon Cognito's schedule); per source
//! address, at most [`ADDRESS_FAILURES_PER_HOUR`] failures an hour.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

/// Failures allowed before the delays start.
pub const FREE_FAILURES: u32 = 5;
/// The longest delay.
pub const MAX_DELAY_SECONDS: i64 = 15 * 60;
/// Failed sign-ins one source address may make in an hour, across every account and tenant.
pub const ADDRESS_FAILURES_PER_HOUR: u32 = 100;

/// The lock an account gets after its `failures`-th failure in a row: none for the first
/// [`FREE_FAILURES`] − 1, then 1 s, 2 s, 4 s … up to 15 minutes.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use rollcall::oidc::throttle::lock_after;
/// let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
/// assert_eq!(lock_after(4, t), None);
/// assert_eq!(lock_after(5, t), Some(t + Duration::seconds(1)));
/// assert_eq!(lock_after(6, t), Some(t + Duration::seconds(2)));
/// assert_eq!(lock_after(40, t), Some(t + Duration::minutes(15)));
/// ```
pub fn lock_after(failures: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if failures < FREE_FAILURES {
        return None;
    }
    let doublings = failures - FREE_FAILURES;
    let delay = if doublings >= 10 {
        MAX_DELAY_SECONDS
    } else {
        (1i64 << doublings).min(MAX_DELAY_SECONDS)
    };
    Some(now + Duration::seconds(delay))
}

/// The bucket a source address counts in: an IPv4 address itself, an IPv6 address by its /64
/// (one host can hold a whole /64). Anything else (no address known) is `unknown`.
pub fn address_bucket(source: Option<&str>) -> String {
    match source.and_then(|s| s.parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".into(),
    }
}

/// The hour an address counter belongs to.
pub fn hour_of(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_delay_doubles_from_one_second_to_fifteen_minutes() {
        let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let delays: Vec<i64> = (1..=16)
            .map(|n| lock_after(n, t).map_or(0, |l| (l - t).num_seconds()))
            .collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
        );
        assert_eq!(lock_after(u32::MAX, t), Some(t + Duration::minutes(15)));
    }

    #[test]
    fn addresses_bucket_by_host_or_slash_64() {
        assert_eq!(address_bucket(Some("203.0.113.10")), "203.0.113.10");
        assert_eq!(
            address_bucket(Some("2001:db8:1:2:3:4:5:6")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(address_bucket(Some("nonsense")), "unknown");
        assert_eq!(address_bucket(None), "unknown");
    }
}
