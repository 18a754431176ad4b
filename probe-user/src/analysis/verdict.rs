//! Who closed a connection first, and how: from what each of its two sockets saw.
//!
//! Each socket contributes the *first* thing it saw of the end (a [`CloseStart`]); the
//! kernel facts behind each one are in `docs/verdicts.md`. When both ends were traced,
//! the two views are combined by [`combine`]; when only one was, its view decides.

use serde::Serialize;

/// One end of a connection: the side that connected, or the side that accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub const fn other(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

/// The `closed_first` of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedFirst {
    Client,
    Server,
    /// Both FINs crossed on the wire (FIN_WAIT1→CLOSING), or both ends say they
    /// started the close.
    Simultaneous,
    /// The connection ended but the trace does not say how (lost events, or a kernel
    /// without the reset tracepoints).
    Unknown,
    /// Neither side had started to close when the trace ended.
    Open,
}

impl ClosedFirst {
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
            Self::Simultaneous => "simultaneous",
            Self::Unknown => "unknown",
            Self::Open => "open",
        }
    }

    pub const fn from_side(side: Side) -> Self {
        match side {
            Side::Client => Self::Client,
            Side::Server => Self::Server,
        }
    }

    /// The side that closed first, when one did.
    pub const fn side(self) -> Option<Side> {
        match self {
            Self::Client => Some(Side::Client),
            Self::Server => Some(Side::Server),
            Self::Simultaneous | Self::Unknown | Self::Open => None,
        }
    }
}

/// How the first closer ended the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseHow {
    Fin,
    Rst,
    /// The connect was answered with an RST (ECONNREFUSED).
    Refused,
    /// The connect was never answered: the kernel gave up (ETIMEDOUT) or the
    /// application closed the socket while it was still in SYN_SENT.
    Timeout,
    /// The connect failed with another error (EHOSTUNREACH, ENETUNREACH...).
    Unreachable,
    /// The connect never sent a SYN: no local port was free toward its destination
    /// (`connect()` failed with EADDRNOTAVAIL; docs/kernel-facts.md §1.1).
    NoPort,
}

impl CloseHow {
    /// How many there are: the length of arrays indexed by [`Self::index`].
    pub const COUNT: usize = 6;

    pub const ALL: [Self; Self::COUNT] = [
        Self::Fin,
        Self::Rst,
        Self::Refused,
        Self::Timeout,
        Self::Unreachable,
        Self::NoPort,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Fin => "fin",
            Self::Rst => "rst",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::NoPort => "no_port",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseVerdict {
    pub closed_first: ClosedFirst,
    pub how: Option<CloseHow>,
}

impl CloseVerdict {
    pub const OPEN: Self = Self {
        closed_first: ClosedFirst::Open,
        how: None,
    };

    const fn new(closed_first: ClosedFirst, how: CloseHow) -> Self {
        Self {
            closed_first,
            how: Some(how),
        }
    }
}

/// The first sign of the end that one socket saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseStart {
    /// It sent the first FIN: ESTABLISHED (or SYN_RECV) → FIN_WAIT1, in the closing
    /// task's `close()`/`shutdown()`.
    LocalFin,
    /// It aborted: → CLOSE from an open state, followed by its own `tcp_send_reset`
    /// (linger-0 close, close with unread data, listener closed before `accept()`).
    LocalRst,
    /// The peer's FIN arrived first: → CLOSE_WAIT.
    PeerFin,
    /// The peer's RST arrived: `tcp_receive_reset`, then → CLOSE.
    PeerRst,
    /// Both FINs crossed: FIN_WAIT1 → CLOSING.
    BothFin,
    /// The connect was answered with an RST: SYN_SENT → CLOSE after
    /// `tcp_receive_reset`, or with error 111.
    Refused,
    /// The connect got no answer: SYN_SENT → CLOSE with error 110, or without any
    /// error (the application gave up first).
    TimedOut,
    /// The connect failed with another error (ICMP unreachable...).
    Unreachable,
    /// The connect found no free local port: SYN_SENT → CLOSE with no error report and
    /// a source port never picked.
    NoLocalPort,
    /// → CLOSE from an open state with no RST seen in either direction.
    Abort,
}

impl CloseStart {
    /// The verdict this observation implies, for a socket on `side`.
    pub const fn verdict(self, side: Side) -> CloseVerdict {
        let this = ClosedFirst::from_side(side);
        let peer = ClosedFirst::from_side(side.other());
        match self {
            Self::LocalFin => CloseVerdict::new(this, CloseHow::Fin),
            Self::LocalRst => CloseVerdict::new(this, CloseHow::Rst),
            Self::PeerFin => CloseVerdict::new(peer, CloseHow::Fin),
            Self::PeerRst => CloseVerdict::new(peer, CloseHow::Rst),
            Self::BothFin => CloseVerdict::new(ClosedFirst::Simultaneous, CloseHow::Fin),
            // Only a connecting socket sees these, whatever side it was guessed to be.
            Self::Refused => CloseVerdict::new(ClosedFirst::Server, CloseHow::Refused),
            Self::TimedOut => CloseVerdict::new(ClosedFirst::Client, CloseHow::Timeout),
            Self::Unreachable => CloseVerdict::new(ClosedFirst::Unknown, CloseHow::Unreachable),
            // The client's own kernel ended it, before anything reached the server.
            Self::NoLocalPort => CloseVerdict::new(ClosedFirst::Client, CloseHow::NoPort),
            Self::Abort => CloseVerdict {
                closed_first: ClosedFirst::Unknown,
                how: None,
            },
        }
    }

    const fn is_local(self) -> bool {
        matches!(self, Self::LocalFin | Self::LocalRst)
    }

    const fn is_connect_failure(self) -> bool {
        matches!(
            self,
            Self::Refused | Self::TimedOut | Self::Unreachable | Self::NoLocalPort
        )
    }
}

/// Combines the client's and the server's views.
///
/// A socket that *started* the close saw it directly (its own syscall), while the other
/// only saw its effect, so a local observation wins over a peer one; when both ends
/// say they started it, the close was simultaneous.
pub fn combine(client: Option<CloseStart>, server: Option<CloseStart>) -> CloseVerdict {
    let (c, s) = match (client, server) {
        (None, None) => return CloseVerdict::OPEN,
        (Some(c), None) => return c.verdict(Side::Client),
        (None, Some(s)) => return s.verdict(Side::Server),
        (Some(c), Some(s)) => (c, s),
    };
    let (a, b) = (c.verdict(Side::Client), s.verdict(Side::Server));
    let rst = a.how == Some(CloseHow::Rst) || b.how == Some(CloseHow::Rst);
    let simultaneous = CloseVerdict::new(
        ClosedFirst::Simultaneous,
        if rst { CloseHow::Rst } else { CloseHow::Fin },
    );
    if c.is_connect_failure() {
        return a;
    }
    if c == CloseStart::BothFin || s == CloseStart::BothFin {
        return CloseVerdict::new(ClosedFirst::Simultaneous, CloseHow::Fin);
    }
    if a == b || b.closed_first == ClosedFirst::Unknown {
        return a;
    }
    if a.closed_first == ClosedFirst::Unknown {
        return b;
    }
    match (c.is_local(), s.is_local()) {
        (true, true) => simultaneous,
        (true, false) => a,
        (false, true) => b,
        // Each says the other started: their closes crossed.
        (false, false) => simultaneous,
    }
}

#[cfg(test)]
mod tests {
    use super::{CloseStart::*, *};

    fn v(closed_first: ClosedFirst, how: CloseHow) -> CloseVerdict {
        CloseVerdict::new(closed_first, how)
    }

    #[test]
    fn one_view_decides_alone() {
        assert_eq!(combine(None, None), CloseVerdict::OPEN);
        assert_eq!(
            combine(Some(LocalFin), None),
            v(ClosedFirst::Client, CloseHow::Fin)
        );
        assert_eq!(
            combine(Some(PeerRst), None),
            v(ClosedFirst::Server, CloseHow::Rst)
        );
        assert_eq!(
            combine(None, Some(LocalRst)),
            v(ClosedFirst::Server, CloseHow::Rst)
        );
        assert_eq!(
            combine(None, Some(PeerFin)),
            v(ClosedFirst::Client, CloseHow::Fin)
        );
        assert_eq!(
            combine(Some(Refused), None),
            v(ClosedFirst::Server, CloseHow::Refused)
        );
        assert_eq!(
            combine(Some(TimedOut), None),
            v(ClosedFirst::Client, CloseHow::Timeout)
        );
        assert_eq!(
            combine(Some(Abort), None).closed_first,
            ClosedFirst::Unknown
        );
    }

    #[test]
    fn two_views_agree_or_the_local_one_wins() {
        // Also when the server then resets (unread data): its close started with the
        // client's FIN.
        assert_eq!(
            combine(Some(LocalFin), Some(PeerFin)),
            v(ClosedFirst::Client, CloseHow::Fin)
        );
        assert_eq!(
            combine(Some(PeerRst), Some(LocalRst)),
            v(ClosedFirst::Server, CloseHow::Rst)
        );
        // The server aborted, but the client's view was lost: the server's view holds.
        assert_eq!(
            combine(Some(Abort), Some(LocalRst)),
            v(ClosedFirst::Server, CloseHow::Rst)
        );
        assert_eq!(
            combine(Some(BothFin), Some(BothFin)),
            v(ClosedFirst::Simultaneous, CloseHow::Fin)
        );
        assert_eq!(
            combine(Some(LocalFin), Some(LocalRst)),
            v(ClosedFirst::Simultaneous, CloseHow::Rst)
        );
        assert_eq!(
            combine(Some(PeerFin), Some(PeerFin)),
            v(ClosedFirst::Simultaneous, CloseHow::Fin)
        );
    }
}
