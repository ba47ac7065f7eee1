//! Wall-clock times as monitors show them: unix milliseconds inside, RFC 3339
//! UTC (`2026-12-02T04:24:22Z`) in `status`, alerts and `uptime`, RFC 822
//! (`Wed, 02 Dec 2026 04:24:22 +0000`) in the RSS feed, and RFC 3339 read
//! back for `uptime --from/--to`.
//!
//! Written out (Howard Hinnant's day algorithms) rather than pulled in from
//! a date crate: three functions, tested by a table, for the one calendar
//! the server speaks.

use crate::civil::{civil_from_days, days_from_civil};

/// Unix time in milliseconds.
pub type Millis = u64;

const DAY_SECS: u64 = 86_400;

/// `2026-12-02T04:24:22Z` (whole seconds, UTC).
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days(secs / DAY_SECS);
    let rem = secs % DAY_SECS;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `Wed, 02 Dec 2026 04:24:22 +0000`, as RSS 2.0's `pubDate` wants.
pub fn rfc822(ms: Millis) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms / 1000;
    let days = secs / DAY_SECS;
    let (y, m, d) = civil_from_days(days);
    let rem = secs % DAY_SECS;
    // 1970-01-01 was a Thursday; `m` is 1..=12 by construction.
    let weekday = DAYS[(days % 7) as usize];
    let month = MONTHS.get((m as usize).wrapping_sub(1)).unwrap_or(&"Jan");
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads `2026-12-02T04:24:22Z`, with optional fraction (`.5`) and a `Z` or
/// `±HH:MM` offset; a space may stand for the `T`. Times before 1970 are
/// refused. The error is a short reason for the usage line.
pub fn parse_rfc3339(s: &str) -> Result<Millis, String> {
    const WANT: &str = "expected a time like 2026-01-02T15:04:05Z";
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(WANT.into());
    }
    let num = |from: usize, len: usize| -> Result<u64, String> {
        let part = s.get(from..from + len).ok_or(WANT)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(WANT.into());
        }
        part.parse::<u64>().map_err(|_| WANT.to_string())
    };
    let sep = |at: usize, ok: &[u8]| b.get(at).is_some_and(|c| ok.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(WANT.into());
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, se) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60
    {
        return Err("no such date or time".into());
    }
    let mut rest = s.get(19..).ok_or(WANT)?;
    let mut frac_ms = 0;
    if let Some(after) = rest.strip_prefix('.') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(WANT.into());
        }
        let (frac, tail) = after.split_at(digits);
        let first3 = format!("{frac:0<3}");
        frac_ms = first3
            .get(..3)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        rest = tail;
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            let sign = match ob.first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(WANT.into()),
            };
            if ob.len() != 6 || ob.get(3) != Some(&b':') {
                return Err(WANT.into());
            }
            let oh: i64 = rest.get(1..3).and_then(|t| t.parse().ok()).ok_or(WANT)?;
            let om: i64 = rest.get(4..6).and_then(|t| t.parse().ok()).ok_or(WANT)?;
            if oh > 23 || om > 59 {
                return Err(WANT.into());
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let local = days_from_civil(y, mo, d)
        .map(|days| days * DAY_SECS as i64 + (h * 3600 + mi * 60 + se.min(59)) as i64)
        .ok_or("times before 1970 are not supported")?;
    let utc = local - offset_secs;
    if utc < 0 {
        return Err("times before 1970 are not supported".into());
    }
    Ok(utc as u64 * 1000 + frac_ms)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formats() {
        let table = [
            (0, "1970-01-01T00:00:00Z", "Thu, 01 Jan 1970 00:00:00 +0000"),
            (
                951_782_400_000,
                "2000-02-29T00:00:00Z",
                "Tue, 29 Feb 2000 00:00:00 +0000",
            ),
            (
                1_796_185_462_999,
                "2026-12-02T04:24:22Z",
                "Wed, 02 Dec 2026 04:24:22 +0000",
            ),
        ];
        for (ms, iso, rss) in table {
            assert_eq!(rfc3339(ms), iso);
            assert_eq!(rfc822(ms), rss);
        }
    }

    #[test]
    fn parses() {
        let ok = [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-12-02T04:24:22Z", 1_796_185_462_000),
            ("2026-12-02 04:24:22.5Z", 1_796_185_462_500),
            ("2026-12-02T06:24:22+02:00", 1_796_185_462_000),
            ("2026-12-01T23:24:22-05:00", 1_796_185_462_000),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
        ];
        for (s, want) in ok {
            assert_eq!(parse_rfc3339(s), Ok(want), "{s}");
        }
        for bad in [
            "",
            "2026-12-02",
            "2026-12-02T04:24:22",
            "2026-13-02T04:24:22Z",
            "2026-02-30T04:24:22Z",
            "2026-12-02T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-12-02T04:24:22+0200",
            "2026-12-02T04:24:22.Z",
            "２026-12-02T04:24:22Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        for ms in [0, 951_782_400_000, 1_796_185_462_000] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Ok(ms));
        }
    }
}
