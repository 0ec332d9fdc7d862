//! Pacemaker scores: integers saturating at ±INFINITY (1 000 000).

/// Pacemaker's INFINITY.
pub const INFINITY: i64 = 1_000_000;

/// Add two scores the way Pacemaker does (`pcmk__add_scores`): -INFINITY wins over
/// everything, then +INFINITY, otherwise the sum clamped to ±INFINITY.
pub fn add(a: i64, b: i64) -> i64 {
    if a <= -INFINITY || b <= -INFINITY {
        -INFINITY
    } else if a >= INFINITY || b >= INFINITY {
        INFINITY
    } else {
        (a + b).clamp(-INFINITY, INFINITY)
    }
}

/// Parse a score (`char2score`): `INFINITY`, `+INFINITY`, `-INFINITY`, `red`/`yellow`/
/// `green` are not supported (they need node-health options) and fail, as does any
/// non-integer. Values beyond ±INFINITY are clamped.
pub fn parse(s: &str) -> Option<i64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => return Some(INFINITY),
        "-infinity" => return Some(-INFINITY),
        _ => {}
    }
    // Like strtoll: an optional sign and leading digits; trailing junk is ignored.
    let bytes = t.as_bytes();
    let mut end = 0;
    if end < bytes.len() && (bytes[end] == b'+' || bytes[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() && end - digits_start < 30 {
        end += 1;
    }
    if end == digits_start {
        return None;
    }
    let v: i128 = t[..end].parse().ok()?;
    Some(v.clamp(-(INFINITY as i128), INFINITY as i128) as i64)
}

/// Render a score as Pacemaker prints it.
pub fn show(v: i64) -> String {
    if v >= INFINITY {
        "INFINITY".to_string()
    } else if v <= -INFINITY {
        "-INFINITY".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_addition() {
        assert_eq!(add(INFINITY, -INFINITY), -INFINITY);
        assert_eq!(add(-INFINITY, INFINITY), -INFINITY);
        assert_eq!(add(INFINITY, -5), INFINITY);
        assert_eq!(add(999_999, 5), INFINITY);
        assert_eq!(add(-999_999, -5), -INFINITY);
        assert_eq!(add(3, 4), 7);
    }

    #[test]
    fn parsing() {
        assert_eq!(parse("INFINITY"), Some(INFINITY));
        assert_eq!(parse("+INFINITY"), Some(INFINITY));
        assert_eq!(parse("-infinity"), Some(-INFINITY));
        assert_eq!(parse("12"), Some(12));
        assert_eq!(parse("99999999999"), Some(INFINITY));
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("1.0"), Some(1));
        assert_eq!(parse("-"), None);
    }
}
