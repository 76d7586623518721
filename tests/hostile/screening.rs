//! Issue 12, defect 3: screening ran on the async worker threads (8
//! callers of CheckComment on a 5,000-character text raised an unrelated
//! GetComment's p50 from 1.4 ms to 252 ms), with no limit on CheckComment
//! and no bound on the work waiting.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinSet;
use tonic::Code;

use crate::server::{Client, Server, clean_submission, quantile};
use commentd::api::pb;

const TEXT_CHARS: usize = 5_000;

/// `"x x x …"`, 5,000 characters.
fn spaced_letters() -> String {
    "x ".repeat(TEXT_CHARS / 2).trim_end().to_owned()
}

/// 5,000 pseudo-random symbols, letters and spaces (a fixed seed).
fn random_symbols() -> String {
    const ALPHABET: &[u8] = b"!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~ abcxyzQWZ0189 ";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..TEXT_CHARS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn check(text: &str) -> pb::CheckCommentRequest {
    pb::CheckCommentRequest {
        text: text.to_owned(),
        author_name: "Reader".to_owned(),
    }
}

/// `count` sequential GetComment calls, `pause` apart; their durations,
/// sorted.
async fn get_latencies(
    client: &mut Client,
    id: &str,
    count: usize,
    pause: Duration,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        tokio::time::sleep(pause).await;
        let started = Instant::now();
        client
            .get_comment(pb::GetCommentRequest {
                comment_id: id.to_owned(),
            })
            .await
            .expect("GetComment succeeds");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_screening_does_not_delay_other_calls() {
    // No CheckComment limit: the point is the load, not its refusal.
    let server = Server::start(&["--check-rate-limit-per-sec", "0"]);
    let mut client = server.client().await;
    let comment = client
        .submit_comment(clean_submission(
            "latency-article",
            "A measured piece on the council's transport plans.",
        ))
        .await
        .expect("submits")
        .into_inner()
        .comment
        .expect("approved");
    let mut reader = server.client().await;
    let idle = get_latencies(&mut reader, &comment.id, 20, Duration::ZERO).await;

    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicUsize::new(0));
    let mut callers = JoinSet::new();
    let texts = [spaced_letters(), random_symbols()];
    for caller in 0..8 {
        let mut client = server.client().await;
        let text = texts[caller % texts.len()].clone();
        let (stop, checked) = (stop.clone(), checked.clone());
        callers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client
                    .check_comment(check(&text))
                    .await
                    .expect("CheckComment succeeds");
                checked.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = server.cpu_seconds();
    let checked_before = checked.load(Ordering::Relaxed);
    let started = Instant::now();
    let loaded = get_latencies(&mut reader, &comment.id, 50, Duration::from_millis(20)).await;
    let elapsed = started.elapsed();
    let cpu = (server.cpu_seconds() - cpu_before) / elapsed.as_secs_f64();
    let checks = checked.load(Ordering::Relaxed) - checked_before;
    stop.store(true, Ordering::Relaxed);
    callers.join_all().await;

    let (p50, p95) = (quantile(&loaded, 0.5), quantile(&loaded, 0.95));
    eprintln!(
        "GetComment alone: p50 {:?}, p95 {:?}; with 8 callers looping CheckComment on 5,000 \
         adversarial characters ({checks} checks in {elapsed:?}, the server at {:.0}% of a core, \
         ≈ {:.0} ms of CPU a check): p50 {p50:?}, p95 {p95:?}, max {:?}",
        quantile(&idle, 0.5),
        quantile(&idle, 0.95),
        cpu * 100.0,
        cpu * elapsed.as_secs_f64() * 1000.0 / checks.max(1) as f64,
        loaded.last().unwrap(),
    );
    assert!(checks > 0, "the callers made no progress");
    assert!(
        p50 < Duration::from_millis(100),
        "GetComment p50 {p50:?} under screening load"
    );
}

/// Runs `count` CheckComment calls at once, each on its own client clone;
/// the statuses of those refused and how many succeeded.
async fn concurrent_checks(
    server: &Server,
    text: &str,
    count: usize,
) -> (usize, Vec<tonic::Status>) {
    let client = server.client().await;
    let mut calls = JoinSet::new();
    for _ in 0..count {
        let mut client = client.clone();
        let request = check(text);
        calls.spawn(async move { client.check_comment(request).await });
    }
    let mut succeeded = 0;
    let mut refused = Vec::new();
    for result in calls.join_all().await {
        match result {
            Ok(_) => succeeded += 1,
            Err(status) => refused.push(status),
        }
    }
    (succeeded, refused)
}

#[tokio::test]
async fn screening_beyond_its_workers_and_queue_is_refused_not_queued() {
    let server = Server::start(&[
        "--screening-workers",
        "1",
        "--screening-queue",
        "1",
        "--check-rate-limit-per-sec",
        "0",
    ]);
    let (succeeded, refused) = concurrent_checks(&server, &spaced_letters(), 16).await;
    eprintln!(
        "16 concurrent CheckComment calls, 1 worker and a queue of 1: {succeeded} screened, {} \
         refused ({:?})",
        refused.len(),
        refused.first().map(tonic::Status::message)
    );
    assert!(succeeded >= 1, "none was screened: {refused:?}");
    assert!(!refused.is_empty(), "none was refused");
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("screening is busy"), "{status:?}");
    }
}

#[tokio::test]
async fn a_burst_of_check_comment_calls_from_one_address_is_limited() {
    // The default: 20 calls a second, bursts of 40.
    let server = Server::start(&[]);
    let (succeeded, refused) =
        concurrent_checks(&server, "Is this comment fine to post?", 60).await;
    eprintln!(
        "a burst of 60 CheckComment calls from one address: {succeeded} answered, {} refused ({:?})",
        refused.len(),
        refused.first().map(tonic::Status::message)
    );
    assert!(succeeded >= 40, "{succeeded} answered: {refused:?}");
    assert!(!refused.is_empty(), "none was refused");
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("CheckComment"), "{status:?}");
    }
}
