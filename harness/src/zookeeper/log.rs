//! Reading ZooKeeper's own log.

/// How many connections ZooKeeper's log says it rejected for "Too many connections".
///
/// 3.8 rate-limits this message (`RateLogger`, 100 ms): a first `Message:... Value:`
/// line, then `[K times] Message: ...` lines that count K rejections each (one without
/// the prefix).
pub fn logged_rejections(log: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains("Too many connections"))
        .map(|line| {
            line.find(" times] Message")
                .and_then(|end| {
                    let start = line[..end].rfind('[')? + 1;
                    line[start..end].parse().ok()
                })
                .unwrap_or(1)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::logged_rejections;

    #[test]
    fn rate_limited_rejections_are_counted_once_each() {
        let log = "\
2026-11-25T10:30:11.512 [NIOServerCxnFactory.AcceptThread:/10.78.0.1:2181] WARN org.apache.zookeeper.server.NIOServerCnxnFactory - Message:Error accepting new connection: Too many connections from /10.78.0.2 - max is 4 Value:null
2026-11-25T10:30:12.672 [NIOServerCxnFactory.AcceptThread:/10.78.0.1:2181] WARN org.apache.zookeeper.server.NIOServerCnxnFactory - [3 times] Message: Error accepting new connection: Too many connections from /10.78.0.2 - max is 4
2026-11-25T10:30:13.073 [NIOServerCxnFactory.AcceptThread:/10.78.0.1:2181] WARN org.apache.zookeeper.server.NIOServerCnxnFactory - Message: Error accepting new connection: Too many connections from /10.78.0.2 - max is 4
2026-11-25T10:30:13.100 [main] INFO org.apache.zookeeper.server.ZooKeeperServer - something else
";
        assert_eq!(logged_rejections(log), 5);
    }
}
