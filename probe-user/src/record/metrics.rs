//! `tcpchurn record --metrics ADDR:PORT`: serves the live verdict's exposition at
//! `/metrics`, from a thread of its own. The analysis thread renders the exposition
//! once per refresh into a slot; the server only copies the slot out, so a scraper,
//! slow or stuck, holds nothing the recorder or the analysis need. Each exchange has a
//! deadline and a cap on concurrent connections bounds what clients that never finish
//! (slowloris) can take.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context as _;
use bytes::Bytes;
use log::warn;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    sync::{Notify, Semaphore},
};

use crate::{
    kernel::capabilities::{self, CapSet},
    record::observer::View,
    render::{
        live::Live,
        metrics::{CONTENT_TYPE, PairBook, exposition},
    },
};

/// One request and its answer, from accept to close.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The request head, from accept: a client that says nothing frees its place soon.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 32;
/// A request head larger than this is refused.
const MAX_HEAD: usize = 8 << 10;

/// The latest exposition.
#[derive(Clone, Debug, Default)]
pub struct Slot(Arc<Mutex<Bytes>>);

impl Slot {
    fn set(&self, text: Bytes) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }

    fn get(&self) -> Bytes {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Renders each verdict into the slot.
pub struct Exporter {
    slot: Slot,
    book: PairBook,
    max_pairs: usize,
}

impl Exporter {
    pub fn new(slot: Slot, max_pairs: usize) -> Self {
        Self {
            slot,
            book: PairBook::new(max_pairs),
            max_pairs,
        }
    }
}

impl View for Exporter {
    fn show(&mut self, live: &Arc<Live>) {
        match exposition(live, &mut self.book, self.max_pairs) {
            Ok(text) => self.slot.set(Bytes::from(text)),
            Err(err) => warn!("metrics: {err}"),
        }
    }
}

/// Binds the address before anything is attached: a taken port fails the recording
/// at once.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).with_context(|| format!("--metrics {addr}"))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("--metrics {addr}"))?;
    Ok(listener)
}

/// The running server.
#[derive(Debug)]
pub struct Server {
    shutdown: Arc<Notify>,
    handle: JoinHandle<()>,
}

impl Server {
    /// Serves `slot` on `listener` from a thread with its own runtime.
    pub fn start(listener: TcpListener, slot: Slot) -> anyhow::Result<Self> {
        let shutdown = Arc::new(Notify::new());
        let stop = Arc::clone(&shutdown);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the metrics server")?;
        let handle = std::thread::Builder::new()
            .name("tcpchurn-metrics".into())
            .spawn(move || {
                // The socket is bound already; serving it needs no capability at all.
                let _dropped = capabilities::keep_only(CapSet::EMPTY);
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, slot, &stop).await,
                        Err(err) => warn!("metrics: {err}"),
                    }
                });
            })
            .context("starting the metrics server")?;
        Ok(Self { shutdown, handle })
    }

    /// Stops serving (exchanges in progress are dropped).
    pub fn stop(self) {
        self.shutdown.notify_one();
        let _joined = self.handle.join();
    }
}

async fn serve(listener: tokio::net::TcpListener, slot: Slot, shutdown: &Notify) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = shutdown.notified() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, say: wait rather than spin.
                warn!("metrics: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            continue;
        };
        let body = slot.get();
        tokio::spawn(async move {
            let _done = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, body)).await;
            drop(permit);
        });
    }
}

/// Reads a request head, writes the answer, closes.
async fn exchange(mut stream: tokio::net::TcpStream, body: Bytes) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut head))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let (status_head, body) = answer(&head, body);
    stream.write_all(status_head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// Reads up to the end of the request head (or [`MAX_HEAD`] bytes, or the end).
async fn read_head(stream: &mut tokio::net::TcpStream, head: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() <= MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// The response head and body for a request head: `GET /metrics` (or `HEAD`) gets the
/// exposition; anything else a short error.
fn answer(head: &[u8], exposition: Bytes) -> (String, Bytes) {
    let line = head
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
        .unwrap_or_default();
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if head.len() > MAX_HEAD {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            Bytes::from_static(b"request too large\n"),
        )
    } else if !line.ends_with("HTTP/1.1") && !line.ends_with("HTTP/1.0") {
        (
            "400 Bad Request",
            "text/plain",
            Bytes::from_static(b"not an HTTP request\n"),
        )
    } else if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            Bytes::from_static(b"GET /metrics\n"),
        )
    } else if path != "/metrics" {
        (
            "404 Not Found",
            "text/plain",
            Bytes::from_static(b"tcpchurn serves /metrics\n"),
        )
    } else {
        ("200 OK", CONTENT_TYPE, exposition)
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let body = if method == "HEAD" { Bytes::new() } else { body };
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_gets_the_exposition() {
        let text = Bytes::from_static(b"tcpchurn_events_total 3\n");
        let (head, body) = answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", text.clone());
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(head.contains("Content-Length: 24\r\n"), "{head}");
        assert_eq!(body, text);
        let (head, body) = answer(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", text.clone());
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(body.is_empty());
        for (request, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "404"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"\x16\x03\x01 hello", "400"),
            (b"", "400"),
        ] {
            let (head, _) = answer(request, text.clone());
            assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        }
        let huge = vec![b'a'; MAX_HEAD + 1];
        assert!(answer(&huge, text).0.starts_with("HTTP/1.1 431"));
    }

    #[test]
    fn a_client_that_never_reads_holds_only_its_own_connection() {
        let slot = Slot::default();
        slot.set(Bytes::from(vec![b'x'; 4 << 20]));
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::start(listener, slot.clone()).unwrap();
        // Asks, and never reads the 4 MiB answer.
        let mut stuck = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut stuck, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        // Says nothing at all.
        let _silent = std::net::TcpStream::connect(addr).unwrap();
        slot.set(Bytes::from_static(b"small\n"));
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        std::io::Write::write_all(&mut client, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut response = String::new();
        std::io::Read::read_to_string(&mut client, &mut response).unwrap();
        assert!(response.ends_with("\r\n\r\nsmall\n"), "{response}");
        server.stop();
    }
}
