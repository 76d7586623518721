//! Durable submit throughput: the real server in-process on an ephemeral
//! port, N concurrent gRPC clients submitting clean comments for a fixed
//! time. Every counted submit was acknowledged APPROVED, i.e. flushed.
//!
//! `cargo bench --bench submit -- [--concurrency N] [--seconds S]`

mod common;

use std::time::{Duration, Instant};

use commentd::{
    Application, Config,
    api::pb::{self, comment_service_client::CommentServiceClient},
};
use common::arg;
use tonic::transport::Channel;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency = arg("--concurrency", 16);
    let seconds = arg("--seconds", 10);
    let temp = tempfile::TempDir::new()?;
    let mut config = Config::ephemeral(temp.path());
    config.rate.burst = 0;
    config.peer_rate.burst = 0;
    config.check_rate.burst = 0;
    config.duplicate_window = Duration::ZERO;
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let mut client = CommentServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let started = Instant::now();
                    let response = client
                        .submit_comment(pb::SubmitCommentRequest {
                            article_id: format!("bench/{}", worker % 8),
                            author_name: "Bench".into(),
                            text: format!("A thoughtful remark about the article, take {i}."),
                            client_id: format!("bench-{worker}"),
                            ..Default::default()
                        })
                        .await
                        .expect("submit succeeds")
                        .into_inner();
                    if response
                        .verdict
                        .is_some_and(|v| v.decision() == pb::Decision::Approved)
                    {
                        latencies.push(started.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "durable submits: {} in {:.1} s = {:.0}/s at concurrency {concurrency}; latency p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    let _ = stop.send(());
    server.await??;
    Ok(())
}
