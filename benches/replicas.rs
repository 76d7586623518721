//! commentd over NATS JetStream (issue 14), in one process against a 3-node
//! nats-server cluster on loopback (R3, `sync_interval: always`), started
//! here and stopped on exit:
//!
//! 1. acknowledged appends through the store (stored on a quorum, in this
//!    replica's mirror and views) at 1, 16 and 128 in flight: acks/s, p50,
//!    p99;
//! 2. the same appends seen by a second replica's views (what its
//!    subscribers get): latency from the append to the other replica;
//! 3. with `--catch-up N`: N events published into a stream, then the
//!    time a new replica takes to mirror them and build its views.
//!
//! `cargo bench --features nats --bench replicas -- [--seconds S] [--catch-up N]`
//! (needs nats-server 2.12+ on PATH or in NATS_SERVER).

mod common;
#[path = "common/events.rs"]
mod events;
#[path = "../tests/support/nats.rs"]
mod nats;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use commentd::{
    domain::ArticleEvent,
    store::{Append, Store, StoreOptions, event::encode, nats_log::NatsLogOptions},
};
use common::arg;
use events::approved_submission;

fn options(urls: &str, stream: &str) -> NatsLogOptions {
    NatsLogOptions {
        servers: urls.to_owned(),
        stream: stream.to_owned(),
        replicas: 3,
        duplicate_window: Duration::from_secs(3600),
        timeout: Duration::from_secs(10),
        metrics: Default::default(),
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = arg("--seconds", 5);
    let catch_up = arg("--catch-up", 0);
    let cluster = nats::NatsCluster::start(3);
    let urls = cluster.urls();
    let folders = tempfile::TempDir::new_in(".")?;

    // Replica B only listens: when its views publish an approved comment,
    // how long ago was it submitted on replica A?
    let across: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let heard = across.clone();
    let b = Store::open_nats(
        &folders.path().join("b"),
        &StoreOptions::default(),
        options(&urls, "BENCH"),
        Box::new(move |events, _| {
            let now = SystemTime::now();
            let mut heard = heard.lock().unwrap();
            for event in events {
                if let ArticleEvent::Published(comment) = event {
                    heard.push(now.duration_since(comment.created_at).unwrap_or_default());
                }
            }
        }),
    )
    .await?;
    let a = Store::open_nats(
        &folders.path().join("a"),
        &StoreOptions::default(),
        options(&urls, "BENCH"),
        Box::new(|_, _| {}),
    )
    .await?;
    for concurrency in [1, 16, 128] {
        across.lock().unwrap().clear();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|worker| {
                let store = a.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut count = 0;
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        store
                            .append_one(Append::new(approved_submission(worker, count)))
                            .await
                            .unwrap();
                        latencies.push(sent.elapsed());
                        count += 1;
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for worker in workers {
            latencies.extend(worker.await?);
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        b.caught_up().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut across = std::mem::take(&mut *across.lock().unwrap());
        across.sort();
        println!(
            "{concurrency:>3} in flight: {} acknowledged appends in {elapsed:.1} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms; \
             seen by the other replica's views: p50 {:.2} ms, p99 {:.2} ms",
            latencies.len(),
            latencies.len() as f64 / elapsed,
            quantile(&latencies, 0.5).as_secs_f64() * 1e3,
            quantile(&latencies, 0.99).as_secs_f64() * 1e3,
            quantile(&across, 0.5).as_secs_f64() * 1e3,
            quantile(&across, 0.99).as_secs_f64() * 1e3,
        );
    }
    a.close().await?;
    b.close().await?;

    if catch_up > 0 {
        // Fill a stream as fast as JetStream takes it (pipelined publishes).
        let client = async_nats::connect(urls.split(',').next().unwrap()).await?;
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "CATCHUP".to_owned(),
            subjects: vec!["catchup.>".to_owned()],
            num_replicas: 3,
            allow_atomic_publish: true,
            ..Default::default()
        })
        .await?;
        let payload = Bytes::from(encode(&approved_submission(0, 0)));
        let started = Instant::now();
        let mut pending = std::collections::VecDeque::new();
        for n in 0..catch_up {
            let subject = format!("catchup.article.bench{}", n % 64);
            pending.push_back(js.publish(subject, payload.clone()).await?);
            if pending.len() >= 2048 {
                pending.pop_front().unwrap().await?;
            }
        }
        for ack in pending {
            ack.await?;
        }
        let filled = started.elapsed().as_secs_f64();
        println!(
            "filled a stream with {catch_up} comments in {filled:.1} s ({:.0}/s)",
            catch_up as f64 / filled
        );
        let started = Instant::now();
        let replica = Store::open_nats(
            &folders.path().join("new"),
            &StoreOptions::default(),
            options(&urls, "CATCHUP"),
            Box::new(|_, _| {}),
        )
        .await?;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "a new replica mirrored them and built its views in {elapsed:.1} s ({:.0} comments/s), up to position {}",
            catch_up as f64 / elapsed,
            replica.last_position()
        );
        replica.close().await?;
    }
    Ok(())
}
