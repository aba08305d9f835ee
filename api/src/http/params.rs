//! Query-parameter parsing shared by the endpoints (time ranges, Go-style
//! durations), with 400s that say what was wrong.

use crate::error::{Error, Result};

/// `start` / `end` in unix seconds → an inclusive range of unix nanos.
/// Either may be absent; `start` after `end` is refused.
pub fn seconds_range(start: Option<&str>, end: Option<&str>) -> Result<Option<(i64, i64)>> {
    let parse = |name: &str, v: Option<&str>| -> Result<Option<i64>> {
        v.filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u32>()
                    .map(|secs| secs as i64 * 1_000_000_000)
                    .map_err(|_| Error::bad_request(format!("invalid {name} {s:?}: expected unix seconds")))
            })
            .transpose()
    };
    match (parse("start", start)?, parse("end", end)?) {
        (None, None) => Ok(None),
        (start, end) => {
            let (start, end) = (start.unwrap_or(0), end.unwrap_or(i64::MAX));
            if start > end {
                return Err(Error::bad_request("invalid time range: start must not be after end"));
            }
            // The end second is included whole.
            Ok(Some((start, end.saturating_add(999_999_999))))
        }
    }
}

/// A Go duration (`300ms`, `1.5s`, `1h2m`, `250us`) in nanoseconds.
pub fn go_duration(text: &str) -> Result<i64> {
    let invalid = || Error::bad_request(format!("invalid duration {text:?}: expected e.g. 100ms, 1.5s, 2m"));
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    if rest == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total += value * scale;
        rest = after;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("100ms").unwrap(), 100_000_000);
        assert_eq!(go_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(go_duration("1h2m").unwrap(), 3_720_000_000_000);
        assert_eq!(go_duration("0").unwrap(), 0);
        for bad in ["", "ms", "10", "10x", "1..5s", "-1s"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(seconds_range(None, None).unwrap(), None);
        assert_eq!(seconds_range(Some("1"), Some("2")).unwrap(), Some((1_000_000_000, 2_999_999_999)));
        assert!(seconds_range(Some("3"), Some("2")).is_err());
        assert!(seconds_range(Some("x"), None).is_err());
    }
}
