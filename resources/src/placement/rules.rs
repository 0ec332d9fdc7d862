//! Rule evaluation for location constraints: node-attribute expressions (`#uname`,
//! `#id`, `#kind` and ordinary attributes) combined with `and`/`or`, nested rules.
//! Date expressions are evaluated against `now` for the forms `gt`, `lt` and
//! `in_range` with `start`/`end` dates (no durations, no date_spec).

use super::model::Node;
use super::xml::Element;
use crate::Error;

fn leading_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let b = t.as_bytes();
    let mut end = 0;
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    if end == start {
        return None;
    }
    t[..end].parse().ok()
}

fn leading_f64(s: &str) -> Option<f64> {
    let t = s.trim();
    let mut end = t.len();
    while end > 0 {
        if let Ok(v) = t[..end].parse::<f64>() {
            return Some(v);
        }
        end -= 1;
        while end > 0 && !t.is_char_boundary(end) {
            end -= 1;
        }
    }
    None
}

fn cmp_values(a: &str, b: &str, ty: &str) -> Option<std::cmp::Ordering> {
    let string = || Some(a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()));
    match ty {
        "integer" => match (leading_int(a), leading_int(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => string(),
        },
        "number" => match (leading_f64(a), leading_f64(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => string(),
        },
        "version" => {
            let pa: Vec<i64> = a.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            let pb: Vec<i64> = b.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            Some(pa.cmp(&pb))
        }
        _ => string(),
    }
}

fn expr(e: &Element<'_>, node: &Node) -> Result<bool, Error> {
    let attr = e.attr("attribute").ok_or_else(|| Error::CibInvalid {
        element: e.describe(),
        detail: "expression without attribute; add attribute=\"NAME\"".into(),
    })?;
    let op = e.attr("operation").unwrap_or("eq");
    let actual = node.attrs.get(attr).map(String::as_str);
    let value = e.attr("value");
    // Pacemaker's default type: number/integer for ordering comparisons (number when
    // the value has a decimal point), string otherwise.
    let ty = match e.attr("type") {
        Some(t) => t.to_ascii_lowercase(),
        None => {
            if matches!(op, "lt" | "lte" | "gt" | "gte") {
                if value.map(|v| v.contains('.')).unwrap_or(false) {
                    "number".to_string()
                } else {
                    "integer".to_string()
                }
            } else {
                "string".to_string()
            }
        }
    };
    Ok(match op {
        "defined" => actual.is_some(),
        "not_defined" => actual.is_none(),
        _ => {
            let (Some(a), Some(v)) = (actual, value) else {
                return Ok(op == "ne" && actual.is_none() && value.is_some());
            };
            let Some(o) = cmp_values(a, v, &ty) else {
                return Ok(false);
            };
            use std::cmp::Ordering::*;
            match op {
                "eq" => o == Equal,
                "ne" => o != Equal,
                "lt" => o == Less,
                "lte" => o != Greater,
                "gt" => o == Greater,
                "gte" => o != Less,
                other => {
                    return Err(Error::CibInvalid {
                        element: e.describe(),
                        detail: format!("unknown operation '{other}'; use eq, ne, lt, lte, gt, gte, defined or not_defined"),
                    })
                }
            }
        }
    })
}

/// Parse an ISO 8601 date (`YYYY-MM-DD[ T]hh:mm:ss[Z]`, or `YYYY-DDD` ordinal)
/// into seconds since the epoch. Returns `None` for forms not supported.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let days = match parts.as_slice() {
        [y, m, d] if m.len() <= 2 => {
            let y: i64 = y.parse().ok()?;
            let m: i64 = m.parse().ok()?;
            let d: i64 = d.parse().ok()?;
            days_from_civil(y, m, d)
        }
        [y, ord] => {
            let y: i64 = y.parse().ok()?;
            let o: i64 = ord.parse().ok()?;
            days_from_civil(y, 1, 1) + o - 1
        }
        [y, w, _] if w.starts_with('W') => {
            let _ = y;
            return None;
        }
        _ => return None,
    };
    let mut secs = 0;
    if !time.is_empty() {
        let t: Vec<&str> = time.split(':').collect();
        let h: i64 = t.first()?.parse().ok()?;
        let mi: i64 = t.get(1).map(|x| x.parse().unwrap_or(0)).unwrap_or(0);
        let se: i64 = t
            .get(2)
            .map(|x| {
                x.split(['.', '+', '-'])
                    .next()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        secs = h * 3600 + mi * 60 + se;
    }
    Some(days * 86400 + secs)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn date_expr(e: &Element<'_>, now: Option<i64>) -> Result<bool, Error> {
    let Some(now) = now else {
        return Ok(false);
    };
    let op = e.attr("operation").unwrap_or("in_range");
    let start = e.attr("start").and_then(parse_date);
    let end = e.attr("end").and_then(parse_date);
    Ok(match op {
        "gt" => start.map(|s| now > s).unwrap_or(false),
        "lt" => end.map(|s| now < s).unwrap_or(false),
        "in_range" => {
            if start.is_none() && end.is_none() {
                false
            } else {
                start.map(|s| now >= s).unwrap_or(true) && end.map(|s| now <= s).unwrap_or(true)
            }
        }
        _ => false,
    })
}

/// Evaluate a `<rule>` for `node` at time `now` (seconds since the epoch, if known).
pub fn eval(rule: &Element<'_>, node: &Node, now: Option<i64>) -> Result<bool, Error> {
    let or = rule
        .attr("boolean-op")
        .map(|b| b.eq_ignore_ascii_case("or"))
        .unwrap_or(false);
    let mut any = false;
    let mut all = true;
    let mut seen = false;
    for c in &rule.children {
        let v = match c.name.as_ref() {
            "expression" => expr(c, node)?,
            "date_expression" => date_expr(c, now)?,
            "rule" => eval(c, node, now)?,
            _ => continue,
        };
        seen = true;
        any |= v;
        all &= v;
    }
    if !seen {
        return Ok(false);
    }
    Ok(if or { any } else { all })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1970-01-02 00:00:01"), Some(86401));
        assert_eq!(parse_date("1970-002"), Some(86400));
    }
}
