//! Command-line values the load generators (`tcpchurn-churn`, `tcpchurn-udp-flood`)
//! share, checked where clap parses them.

/// A duration in seconds, fractions allowed: finite and above 0.
pub fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        Ok(_) => Err("must be a positive number of seconds".into()),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finite_positive_seconds_pass() {
        assert_eq!(positive_seconds("0.5"), Ok(0.5));
        for bad in ["0", "-1", "inf", "NaN", "x"] {
            assert!(positive_seconds(bad).is_err(), "{bad}");
        }
    }
}
