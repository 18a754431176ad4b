//! How an error is told to the user.

/// An error as the one line `tcpchurn: ...` prints: its causes joined by `: `, each
/// only once (an error that shows its source in its own message and also returns it
/// would otherwise print it twice).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use std::io;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct ShowsItsSource {
        path: &'static str,
        source: io::Error,
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let err = anyhow::Error::from(ShowsItsSource {
            path: "/ro/x.trace",
            source: io::Error::from_raw_os_error(libc::EROFS),
        });
        assert_eq!(
            super::one_line(&err),
            "/ro/x.trace: Read-only file system (os error 30)"
        );
        let err =
            anyhow::Error::from(io::Error::from_raw_os_error(libc::ENOENT)).context("--netns x");
        assert_eq!(
            super::one_line(&err),
            "--netns x: No such file or directory (os error 2)"
        );
    }
}
