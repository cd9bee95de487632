//! Exact fixed-point numbers: every price and size is an i64 in units of 1e-6
//! (the schema's `scaleE6`), parsed from decimal text without going through
//! floating point.

/// Units per dollar or per contract.
pub const SCALE: i64 = 1_000_000;
/// Digits after the decimal point that SCALE holds.
const SCALE_DIGITS: usize = 6;

/// Why a number could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// Not a decimal number ("abc", "NaN", "1e3", "").
    Syntax,
    /// More than six significant decimals: not representable exactly.
    Precision,
    /// Too large for an i64 at scale 1e-6.
    Overflow,
}

impl NumberError {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberError::Syntax => "not a decimal number",
            NumberError::Precision => "more than 6 decimals",
            NumberError::Overflow => "out of range",
        }
    }
}

/// An exact integer in units of 10^-decimals as units of 1e-6: exact when
/// `decimals` <= 6, else the nearest (half away from zero). None on overflow.
pub fn rescale_e6(units: i64, decimals: u8) -> Option<i64> {
    let d = u32::from(decimals);
    if d <= SCALE_DIGITS as u32 {
        units.checked_mul(10i64.checked_pow(SCALE_DIGITS as u32 - d)?)
    } else {
        let div = 10i128.checked_pow(d - SCALE_DIGITS as u32)?;
        let v = i128::from(units);
        let half = div / 2;
        let q = if v >= 0 {
            (v + half) / div
        } else {
            (v - half) / div
        };
        i64::try_from(q).ok()
    }
}

/// Parses a plain decimal ("0.9990", "-60.00", "42", ".5") into units of 1e-6.
///
/// Trailing zeros beyond six decimals are accepted ("0.12000000"); any other
/// digit there is a Precision error, never a silent rounding.
pub fn parse_e6(text: &str) -> Result<i64, NumberError> {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut whole: i64 = 0;
    let mut frac: i64 = 0;
    let mut frac_digits = 0usize;
    let mut seen_digit = false;
    let mut in_frac = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                let d = i64::from(b - b'0');
                if in_frac {
                    if frac_digits < SCALE_DIGITS {
                        frac = frac * 10 + d;
                        frac_digits += 1;
                    } else if d != 0 {
                        return Err(NumberError::Precision);
                    }
                } else {
                    whole = whole
                        .checked_mul(10)
                        .and_then(|w| w.checked_add(d))
                        .ok_or(NumberError::Overflow)?;
                }
            }
            b'.' if !in_frac => in_frac = true,
            _ => return Err(NumberError::Syntax),
        }
    }
    if !seen_digit {
        return Err(NumberError::Syntax);
    }
    for _ in frac_digits..SCALE_DIGITS {
        frac *= 10;
    }
    let value = whole
        .checked_mul(SCALE)
        .and_then(|w| w.checked_add(frac))
        .ok_or(NumberError::Overflow)?;
    Ok(if negative { -value } else { value })
}

/// A JSON float in whole units (dollars or contracts) to 1e-6 units. Exact for
/// any value with at most six decimals below about 9e9.
pub fn f64_to_e6(value: f64) -> Result<i64, NumberError> {
    if !value.is_finite() {
        return Err(NumberError::Syntax);
    }
    let scaled = (value * SCALE as f64).round();
    // 2^63 is exactly representable; anything at or beyond it overflows.
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&scaled) {
        return Err(NumberError::Overflow);
    }
    Ok(scaled as i64)
}

/// An integer count of `unit`ths (cents: unit = 100) to 1e-6 units.
pub fn int_to_e6(value: i64, per_unit: i64) -> Result<i64, NumberError> {
    value
        .checked_mul(SCALE / per_unit)
        .ok_or(NumberError::Overflow)
}

/// Nearest f64 to a 1e-6 value, for the seed schema's Float64 fields.
pub fn e6_to_f64(value: i64) -> f64 {
    // Split so that large values keep every representable bit.
    let whole = value / SCALE;
    let frac = value % SCALE;
    whole as f64 + frac as f64 / SCALE as f64
}

/// Nearest UInt32 to a 1e-6 size (half away from zero, clamped), for the seed's UInt32 size.
pub fn e6_to_u32(value: i64) -> u32 {
    if value <= 0 {
        return 0;
    }
    let rounded = value.saturating_add(SCALE / 2) / SCALE;
    u32::try_from(rounded).unwrap_or(u32::MAX)
}

/// Canonical decimal text of a 1e-6 value: "0.999", "-60", "2233487.48".
pub fn format_e6(value: i64) -> String {
    let negative = value < 0;
    let magnitude = value.unsigned_abs();
    let scale = SCALE as u64;
    let whole = magnitude / scale;
    let mut frac = magnitude % scale;
    let mut text = String::with_capacity(24);
    if negative {
        text.push('-');
    }
    text.push_str(&whole.to_string());
    if frac != 0 {
        let mut digits = SCALE_DIGITS;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        text.push('.');
        text.push_str(&format!("{frac:0digits$}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kalshi_values_exactly() {
        assert_eq!(parse_e6("0.9990"), Ok(999_000));
        assert_eq!(parse_e6("2233487.48"), Ok(2_233_487_480_000));
        assert_eq!(parse_e6("-60.00"), Ok(-60_000_000));
        assert_eq!(parse_e6("0.001"), Ok(1_000));
        assert_eq!(parse_e6("1"), Ok(1_000_000));
        assert_eq!(parse_e6(".5"), Ok(500_000));
        assert_eq!(parse_e6("0.12000000"), Ok(120_000));
    }

    #[test]
    fn rejects_what_it_cannot_hold() {
        assert_eq!(parse_e6(""), Err(NumberError::Syntax));
        assert_eq!(parse_e6("NaN"), Err(NumberError::Syntax));
        assert_eq!(parse_e6("1e3"), Err(NumberError::Syntax));
        assert_eq!(parse_e6("1.2.3"), Err(NumberError::Syntax));
        assert_eq!(parse_e6("-"), Err(NumberError::Syntax));
        assert_eq!(parse_e6("0.0000001"), Err(NumberError::Precision));
        assert_eq!(parse_e6("99999999999999999999"), Err(NumberError::Overflow));
        assert_eq!(f64_to_e6(-1e300), Err(NumberError::Overflow));
        assert_eq!(f64_to_e6(f64::NAN), Err(NumberError::Syntax));
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_e6(999_000), "0.999");
        assert_eq!(format_e6(-60_000_000), "-60");
        assert_eq!(format_e6(2_233_487_480_000), "2233487.48");
        assert_eq!(format_e6(0), "0");
        assert!(format_e6(i64::MIN + 1).parse::<f64>().is_ok());
    }

    #[test]
    fn seed_fields_are_nearest() {
        assert_eq!(e6_to_u32(1_499_999), 1);
        assert_eq!(e6_to_u32(1_500_000), 2);
        assert_eq!(e6_to_u32(-5), 0);
        assert_eq!(e6_to_u32(i64::MAX), u32::MAX);
        assert_eq!(e6_to_f64(340_000), 0.34);
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(v in proptest::num::i64::ANY) {
            proptest::prop_assume!(v != i64::MIN);
            proptest::prop_assert_eq!(parse_e6(&format_e6(v)), Ok(v));
        }
    }
}
