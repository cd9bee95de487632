//! Exchange timestamps to Unix nanoseconds.

/// Unix seconds, milliseconds, microseconds or nanoseconds to nanoseconds.
///
/// Kalshi's integer `ts` is seconds and `ts_ms` milliseconds, but both have
/// been mixed up by clients and docs. An integer is read by magnitude: below
/// 1e11 it is seconds (until year 5138), below 1e14 milliseconds, below 1e17
/// microseconds, otherwise nanoseconds. Negative values are rejected.
pub fn int_to_ns(value: i64) -> Option<u64> {
    let v = u64::try_from(value).ok()?;
    if v < 100_000_000_000 {
        v.checked_mul(1_000_000_000)
    } else if v < 100_000_000_000_000 {
        v.checked_mul(1_000_000)
    } else if v < 100_000_000_000_000_000 {
        v.checked_mul(1_000)
    } else {
        Some(v)
    }
}

/// Milliseconds (an explicit `ts_ms`) to nanoseconds.
pub fn ms_to_ns(value: i64) -> Option<u64> {
    u64::try_from(value).ok()?.checked_mul(1_000_000)
}

/// Parses RFC 3339 ("2026-07-20T14:30:05.412731Z", "...+02:00") to Unix ns,
/// keeping up to nanosecond precision. Dates before 1970 are rejected.
pub fn rfc3339_to_ns(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(range)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits.min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_seconds = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let minutes = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds;
    let ns = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    u64::try_from(ns).ok()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_keeps_nanoseconds() {
        assert_eq!(
            rfc3339_to_ns("2025-08-12T21:00:32.539836022Z"),
            Some(1_755_032_432_539_836_022)
        );
        assert_eq!(
            rfc3339_to_ns("2026-07-20T14:30:05.412731Z"),
            Some(1_784_557_805_412_731_000)
        );
        assert_eq!(
            rfc3339_to_ns("2026-07-20T14:30:05Z"),
            Some(1_784_557_805_000_000_000)
        );
        assert_eq!(
            rfc3339_to_ns("2026-07-20T16:30:05+02:00"),
            Some(1_784_557_805_000_000_000)
        );
    }

    #[test]
    fn rfc3339_rejects_garbage() {
        for bad in [
            "",
            "2026-07-20",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-07-20T14:30:05",
            "2026-07-20T14:30:05.Z",
            "1969-12-31T23:59:59Z",
            "2026-07-20T14:30:05Zjunk",
        ] {
            assert_eq!(rfc3339_to_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn integers_by_magnitude() {
        assert_eq!(int_to_ns(1_784_557_805), Some(1_784_557_805_000_000_000));
        assert_eq!(
            int_to_ns(1_784_557_805_412),
            Some(1_784_557_805_412_000_000)
        );
        assert_eq!(
            int_to_ns(1_784_557_805_412_731),
            Some(1_784_557_805_412_731_000)
        );
        assert_eq!(
            int_to_ns(1_784_557_805_412_731_001),
            Some(1_784_557_805_412_731_001)
        );
        assert_eq!(int_to_ns(-1), None);
        assert_eq!(ms_to_ns(1_784_557_805_412), Some(1_784_557_805_412_000_000));
    }
}
