//! Group-commit throughput of the store alone (no gRPC, no screening):
//! N tasks recording approved comments for a fixed time.
//!
//! `cargo bench --bench store -- [--concurrency N] [--seconds S]`

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use commentd::{
    domain::{ArticleId, AuthorName, ClientId, CommentText, Decision, Submission, Verdict},
    store::Store,
};
use common::arg;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency = arg("--concurrency", 16);
    let seconds = arg("--seconds", 5);
    let temp = tempfile::TempDir::new()?;
    let store = Store::open(temp.path(), Duration::from_secs(3600), Box::new(|_, _| {}))?;
    let approved = Arc::new(Verdict {
        decision: Decision::Approved,
        reasons: vec![],
        censored_text: None,
    });
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let store = store.clone();
            let approved = approved.clone();
            tokio::spawn(async move {
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let submission = Submission {
                        article_id: ArticleId::parse(&format!("bench/{}", worker % 8)).unwrap(),
                        author_name: AuthorName::parse("Bench").unwrap(),
                        text: CommentText::parse(&format!("Remark {count}"), 100).unwrap(),
                        parent_id: None,
                        client_id: ClientId::parse("bench").unwrap(),
                        idempotency_key: None,
                    };
                    store
                        .record_submission(&submission, &approved)
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
    println!(
        "store: {total} durable inserts in {elapsed:.1} s = {:.0}/s at concurrency {concurrency}",
        total as f64 / elapsed
    );
    store.close().await?;
    Ok(())
}
