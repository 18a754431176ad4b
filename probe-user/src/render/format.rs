//! Numbers as the outputs show them.

/// Seconds in `ns`.
pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Three decimals: what the JSON keeps of seconds and milliseconds.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A duration for people: `850 µs`, `3.2 ms`, `41 ms`, `1.5 s`, `12 min`.
pub fn human_duration(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.0} min", ms / 60_000.0)
    }
}

/// Milliseconds as [`human_duration`], or `-` when unknown.
pub fn human_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| human_duration((ms * 1e6) as u64))
}

/// A size for people: `512 B`, `64.0 KiB`, `12.3 MiB`, `1.2 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1 connection`, `2 connections`.
pub fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(850_000), "850 µs");
        assert_eq!(human_duration(3_200_000), "3.2 ms");
        assert_eq!(human_duration(41_000_000), "41 ms");
        assert_eq!(human_duration(1_500_000_000), "1.5 s");
        assert_eq!(human_duration(720_000_000_000), "12 min");
        assert_eq!(human_ms(None), "-");
        assert_eq!(human_ms(Some(2.0)), "2.0 ms");
        assert_eq!(round3(1.23456), 1.235);
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(1_048_576), "1.0 MiB");
        assert_eq!(plural(1, "socket"), "1 socket");
        assert_eq!(plural(0, "socket"), "0 sockets");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(65_536), "64.0 KiB");
        assert_eq!(human_bytes(12_900_000), "12.3 MiB");
    }
}
