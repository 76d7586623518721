//! Group-commit throughput of the store alone (no gRPC, no screening):
//! N tasks appending approved comments for a fixed time; then the bytes the
//! process wrote to disk per comment (`/proc/self/io`).
//!
//! `cargo bench --bench store -- [--concurrency N] [--seconds S] [--log-only 1]`
//!
//! `--log-only 1` appends to the sled log alone (no views, no materialiser):
//! the floor of what the views cost.
//!
//! Without it, the store is then opened again, as a restart does: the time
//! to rebuild the views from the whole log, and the process's resident
//! memory before and after (which includes sled's cache of the log pages
//! read).

mod common;
#[path = "../tests/support/data_dir.rs"]
mod data_dir;
#[path = "common/events.rs"]
mod events;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use commentd::store::{Append, CommentLog, SledLog, Store, StoreOptions};
use common::arg;
use data_dir::wait_until_released;
use events::approved_submission;

fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("write_bytes: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency = arg("--concurrency", 64);
    let seconds = arg("--seconds", 5);
    let log_only = arg("--log-only", 0) == 1;
    let temp = tempfile::TempDir::new_in(".")?;
    let appender: Arc<dyn Fn(Append) -> futures_append::Future + Send + Sync> = if log_only {
        let db = sled::Config::new().path(temp.path()).open()?;
        let log = SledLog::open(&db, temp.path(), Duration::from_secs(3600))?;
        Arc::new(move |append| {
            let appended = log.append(vec![append]);
            Box::pin(async move { appended.await.map(|_| ()).map_err(anyhow::Error::from) })
        })
    } else {
        let store = Store::open(temp.path(), &StoreOptions::default(), Box::new(|_, _| {}))?;
        Arc::new(move |append| {
            let store = store.clone();
            Box::pin(async move {
                store
                    .append_one(append)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            })
        })
    };
    let written_before = write_bytes();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let append = appender.clone();
            tokio::spawn(async move {
                let mut count = 0u64;
                while Instant::now() < deadline {
                    append(Append::new(approved_submission(worker as usize, count)))
                        .await
                        .unwrap();
                    count += 1;
                }
                count
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(appender);
    let written = write_bytes().saturating_sub(written_before);
    println!(
        "{}: {total} durable appends in {elapsed:.1} s = {:.0}/s at concurrency {concurrency}; \
         {:.0} bytes written to disk per comment",
        if log_only { "log alone" } else { "store" },
        total as f64 / elapsed,
        written as f64 / total.max(1) as f64
    );
    if !log_only {
        reopen(temp.path()).await?;
    }
    Ok(())
}

/// Opens the store in `path` again (once the dropped one let go of it).
async fn reopen(path: &std::path::Path) -> anyhow::Result<()> {
    wait_until_released(path);
    let rss_before = resident_bytes();
    let started = Instant::now();
    let store = Store::open(path, &StoreOptions::default(), Box::new(|_, _| {}))?;
    let took = started.elapsed().as_secs_f64();
    let applied = store.last_position();
    println!(
        "reopened: views rebuilt from {applied} events in {took:.2} s = {:.0} events/s; \
         resident memory {} -> {} MiB",
        applied as f64 / took,
        rss_before >> 20,
        resident_bytes() >> 20
    );
    store.close().await?;
    Ok(())
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

mod futures_append {
    pub type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;
}
