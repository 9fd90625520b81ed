//! Times and steps as Prometheus' HTTP API accepts them.

use std::time::{SystemTime, UNIX_EPOCH};

use super::ApiError;

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds (fractions allowed) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, ApiError> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs.abs() < 1e13 {
            return Ok(secs.floor() as i64);
        }
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "cannot parse {s:?} as Unix seconds or RFC 3339 time"
            ))
        })
}

/// Seconds (`60`, `1.5`) or a duration (`5m`, `1h30m`); at least 1s.
pub fn parse_step(s: &str) -> Result<i64, ApiError> {
    let secs = match s.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => humantime::parse_duration(s)
            .map(|d| d.as_secs_f64())
            .map_err(|_| ApiError::BadRequest(format!("cannot parse step {s:?}")))?,
    };
    if secs < 1.0 {
        return Err(ApiError::BadRequest("step must be at least 1s".into()));
    }
    Ok(secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_steps() {
        assert_eq!(parse_time("1700000000.5").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_step("5m").unwrap(), 300);
        assert_eq!(parse_step("60").unwrap(), 60);
        assert!(parse_step("0.1").is_err());
    }
}
