//! The NATS server of the unit tests: one per test process, started on
//! first use (the harness is shared with the replica tests).

use std::{
    hash::{Hash, Hasher},
    path::Path,
    sync::{OnceLock, mpsc},
    time::Duration,
};

use super::{NatsLog, NatsLogOptions};

#[path = "../../../tests/support/nats.rs"]
mod support;

/// The URL of this process's nats-server.
pub fn server_urls() -> &'static str {
    static URLS: OnceLock<String> = OnceLock::new();
    URLS.get_or_init(|| {
        let (urls, answer) = mpsc::channel();
        // The server lives as long as this thread, which lives as long as
        // the process (the child dies with it: see `support`).
        std::thread::spawn(move || {
            let server = support::NatsCluster::start(1);
            urls.send(server.urls()).unwrap();
            loop {
                std::thread::park();
            }
        });
        answer.recv().expect("nats-server started")
    })
}

/// A NATS log whose stream is named after `dir` (so a test reopening the
/// same folder finds its stream), mirrored into a sled db in `dir`.
pub fn open_nats(dir: &Path) -> NatsLog {
    // Unique per folder, the same for a folder reopened in this process.
    let mut hasher = std::hash::DefaultHasher::new();
    dir.hash(&mut hasher);
    let stream = format!("T{:016x}", hasher.finish());
    open_nats_stream(dir, &stream)
}

/// A NATS log of `stream`, mirrored into a sled db in `dir`.
pub fn open_nats_stream(dir: &Path, stream: &str) -> NatsLog {
    open_nats_db(dir, stream).1
}

/// The sled db in `dir` and a NATS log of `stream` mirrored into it.
pub fn open_nats_db(dir: &Path, stream: &str) -> (sled::Db, NatsLog) {
    let db = (0..100)
        .find_map(|_| {
            sled::Config::new().path(dir).open().ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(20));
                None
            })
        })
        .expect("the sled folder stayed locked");
    let log = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(NatsLog::open(
            &db,
            NatsLogOptions {
                servers: server_urls().to_owned(),
                stream: stream.to_owned(),
                replicas: 1,
                duplicate_window: Duration::from_secs(3600),
                timeout: Duration::from_secs(5),
                metrics: Default::default(),
            },
        ))
    })
    .unwrap();
    (db, log)
}
