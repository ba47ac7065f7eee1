//! Go duration syntax (`time.ParseDuration` / `Duration.String`).
//!
//! pipe.pico.sh users type timeouts the way Go's `flag` package reads them
//! (`-t 500ms`, `-t 1m30s`, `-t 720h`), and the status line
//! `no subs found ... waiting 720h0m0s` prints them the way Go does, so both
//! directions follow Go exactly rather than a Rust crate's dialect.

use std::time::Duration;

/// Largest duration Go can represent: `i64::MAX` nanoseconds (about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits beyond this many are ignored: each one would change the
/// result by less than a nanosecond even for the `h` unit.
const MAX_FRACTION_DIGITS: u32 = 19;

/// Nanoseconds per unit for every unit name Go accepts.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // "µ" is U+00B5 (micro sign), "μ" is U+03BC (Greek mu); Go takes both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a duration in Go's `time.ParseDuration` syntax: a sequence of
/// decimal numbers, each with an optional fraction and a required unit
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `500ms`, `1m30s`, `1.5h`,
/// or the bare `0`. An optional leading `+` is accepted; negative durations
/// are rejected (a `-` is only accepted when the value is zero, as in Go).
///
/// The error is a short reason (no input echo), for the caller to put after
/// `invalid duration "X" for -t: `.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("expected a number and a unit, e.g. 10s, 500ms, 720h".to_string());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let mut int: u128 = 0;
        for b in int_digits.bytes() {
            int = int * 10 + u128::from(b - b'0');
            if int > MAX_NANOS {
                return Err(out_of_range());
            }
        }
        rest = after_int;

        // Fraction part.
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        let mut frac_len = 0;
        if let Some(after_dot) = rest.strip_prefix('.') {
            frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let (frac_digits, after_frac) = after_dot.split_at(frac_len);
            for b in frac_digits.bytes().take(MAX_FRACTION_DIGITS as usize) {
                frac = frac * 10 + u128::from(b - b'0');
                scale *= 10;
            }
            rest = after_frac;
        }
        if int_len == 0 && frac_len == 0 {
            return Err("expected a number and a unit, e.g. 10s, 500ms, 720h".to_string());
        }

        // Unit: everything up to the next digit or '.'.
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after_unit) = rest.split_at(unit_len);
        if unit.is_empty() {
            return Err("missing unit (ns, us, ms, s, m or h), e.g. 10s".to_string());
        }
        let Some(per_unit) = unit_nanos(unit) else {
            return Err(format!("unknown unit {unit:?} (use ns, us, ms, s, m or h)"));
        };
        rest = after_unit;

        // `int <= MAX_NANOS < 2^63` and `per_unit < 2^42`, so no u128 overflow;
        // likewise `frac < 10^19 < 2^64`.
        let whole = int * per_unit;
        let part = frac * per_unit / scale;
        total += whole + part;
        if total > MAX_NANOS {
            return Err(out_of_range());
        }
    }
    if negative && total != 0 {
        return Err("negative durations are not allowed".to_string());
    }
    let nanos = u64::try_from(total).map_err(|_| out_of_range())?;
    Ok(Duration::from_nanos(nanos))
}

fn out_of_range() -> String {
    "out of range (at most 2562047h47m16.854775807s)".to_string()
}

/// Formats like Go's `Duration.String`: `720h0m0s`, `1m30s`, `1.5s`,
/// `500ms`, `1.5µs`, `42ns`, `0s`. Units below a second are used only for
/// durations shorter than a second; otherwise hours, minutes and seconds
/// (with a trailing-zero-free fraction) are printed, larger units only when
/// non-zero.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        let (int, frac) = split_fraction(nanos, 3);
        return format!("{int}{frac}\u{b5}s");
    }
    if nanos < 1_000_000_000 {
        let (int, frac) = split_fraction(nanos, 6);
        return format!("{int}{frac}ms");
    }
    let (secs_total, frac) = split_fraction(nanos, 9);
    let secs = secs_total % 60;
    let mins_total = secs_total / 60;
    if mins_total == 0 {
        return format!("{secs}{frac}s");
    }
    let mins = mins_total % 60;
    let hours = mins_total / 60;
    if hours == 0 {
        return format!("{mins}m{secs}{frac}s");
    }
    format!("{hours}h{mins}m{secs}{frac}s")
}

/// Splits `v` into `v / 10^prec` and the fraction `.ddd` of the low `prec`
/// digits with trailing zeros removed (empty when those digits are all zero).
fn split_fraction(v: u128, prec: u32) -> (u128, String) {
    let pow = 10u128.pow(prec);
    let low = v % pow;
    if low == 0 {
        return (v / pow, String::new());
    }
    let digits = format!("{low:0width$}", width = prec as usize);
    (v / pow, format!(".{}", digits.trim_end_matches('0')))
}
