//! Group-commit throughput of the store alone (no gRPC, no screening):
//! N tasks appending approved comments for a fixed time; then the bytes the
//! process wrote to disk per comment (`/proc/self/io`).
//!
//! `cargo bench --bench store -- [--concurrency N] [--seconds S]`

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use commentd::{
    domain::{ArticleId, AuthorName, ClientId, CommentText, Decision, Verdict},
    store::{Append, Event, Store, StoreOptions, Submitted},
};
use common::arg;

/// 260 characters, as in the gRPC benchmark.
const TEXT: &str = "The council's budget report leaves out the cost of the new bus depot, \
which the transport committee estimated at four million last spring. Could the paper ask \
why that figure is missing, and whether the depot is still planned for next year at all?";

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
    let temp = tempfile::TempDir::new_in(".")?;
    let store = Store::open(temp.path(), &StoreOptions::default(), Box::new(|_, _| {}))?;
    let approved = Arc::new(Verdict {
        decision: Decision::Approved,
        reasons: vec![],
        censored_text: None,
    });
    let written_before = write_bytes();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let store = store.clone();
            let approved = approved.clone();
            tokio::spawn(async move {
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let event = Event::Submitted(Submitted {
                        article_id: ArticleId::parse(&format!("bench/{}", worker % 8)).unwrap(),
                        author_name: Some(AuthorName::parse("Bench").unwrap()),
                        text: Some(CommentText::parse(TEXT, 5000).unwrap()),
                        parent_id: None,
                        client_id: ClientId::parse(&format!("bench-{worker}")).unwrap(),
                        time: SystemTime::now(),
                        verdict: Verdict::clone(&approved),
                        fingerprint: count,
                    });
                    store.append_one(Append::new(event)).await.unwrap();
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
    store.close().await?;
    let written = write_bytes().saturating_sub(written_before);
    println!(
        "store: {total} durable appends in {elapsed:.1} s = {:.0}/s at concurrency {concurrency}; \
         {:.0} bytes written to disk per comment",
        total as f64 / elapsed,
        written as f64 / total.max(1) as f64
    );
    Ok(())
}
