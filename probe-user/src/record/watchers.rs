//! What follows a recording as it is written (`--live`, `--metrics`): the analysis
//! thread fed by the recorder's tee, the screen's thread, the metrics server. Started
//! before the recorder, finished after it.

use std::{net::TcpListener, sync::Arc, thread::JoinHandle};

use anyhow::Context as _;
use tokio::sync::Notify;

use crate::record::{
    files, live,
    metrics::{Exporter, Server, Slot},
    observer::{self, View},
    options::RecordOptions,
    tee::{self, Tee},
};

/// The threads following a recording.
#[derive(Debug, Default)]
pub struct Watchers {
    observer: Option<JoinHandle<()>>,
    screen: Option<JoinHandle<()>>,
    server: Option<Server>,
}

impl Watchers {
    /// Starts what `options` ask for; the recorder hands what it writes to the tee.
    /// `metrics` is the bound `--metrics` address; `stop` stops the recording (`q`).
    pub fn start(
        options: &RecordOptions,
        metrics: Option<TcpListener>,
        stop: Arc<Notify>,
    ) -> anyhow::Result<(Option<Tee>, Self)> {
        if !options.watched() {
            return Ok((None, Self::default()));
        }
        let mut watchers = Self::default();
        let mut views: Vec<Box<dyn View>> = Vec::new();
        if options.live {
            let live = live::view(stop).context("starting the live view")?;
            views.push(live.view);
            watchers.screen = live.screen;
        }
        if let Some(listener) = metrics {
            let slot = Slot::default();
            watchers.server = Some(Server::start(listener, slot.clone())?);
            views.push(Box::new(Exporter::new(slot, options.metrics_pairs)));
        }
        let (tee, receiver) = tee::tee();
        watchers.observer = Some(
            observer::spawn(
                receiver,
                options.output.display().to_string(),
                files::discards(&options.output),
                options.refresh,
                views,
            )
            .context("starting the live analysis")?,
        );
        Ok((Some(tee), watchers))
    }

    /// Once the recording has ended (and dropped the tee): the last verdict is shown,
    /// the screen is closed, the server stops.
    pub fn finish(self) {
        for handle in [self.observer, self.screen].into_iter().flatten() {
            let _joined = handle.join();
        }
        if let Some(server) = self.server {
            server.stop();
        }
    }
}
