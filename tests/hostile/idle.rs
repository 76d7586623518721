//! Issue 12, defect 5 (second half): idle connections were never closed
//! (5,000 raw TCP and 5,000 HTTP/2 connections answering pings, held for
//! 45 s, 127 MiB).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use h2::client::{self, SendRequest};
use tokio::{
    io::AsyncReadExt,
    net::TcpStream,
    task::{JoinHandle, JoinSet},
};

use crate::server::{Server, bytes_per, clean_submission, subscribe_request};

/// A TCP connection that sends nothing; completes with the time the
/// server took to close it.
async fn silent_connection(addr: SocketAddr) -> JoinHandle<Duration> {
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    let opened = Instant::now();
    tokio::spawn(async move {
        let mut buffer = [0; 64];
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                // Whatever the server says before closing.
                Ok(_) => {}
            }
        }
    })
}

/// An HTTP/2 connection with no stream: the handshake, then only the
/// pings the h2 client answers by itself. The sender is kept so the client
/// does not close it; the task completes with the time the server took.
async fn idle_http2_connection(addr: SocketAddr) -> (SendRequest<Bytes>, JoinHandle<Duration>) {
    let tcp = TcpStream::connect(addr).await.expect("connects");
    let opened = Instant::now();
    let (sender, connection) = client::handshake(tcp).await.expect("HTTP/2 handshake");
    let closed = tokio::spawn(async move {
        let _ = connection.await;
        opened.elapsed()
    });
    (sender, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_not_those_with_a_stream() {
    // Pings every second: an idle HTTP/2 peer answers them, and must be
    // closed all the same.
    let server = Server::start(&["--idle-timeout-secs", "1", "--keepalive-interval-secs", "1"]);
    let mut subscriber = server.client().await;
    let mut stream = subscriber
        .subscribe_comments(subscribe_request("idle-article"))
        .await
        .expect("subscribes")
        .into_inner();

    let silent = silent_connection(server.addr).await;
    let (_sender, http2) = idle_http2_connection(server.addr).await;
    let silent = tokio::time::timeout(Duration::from_secs(5), silent)
        .await
        .expect("the server closes a connection that sends nothing")
        .unwrap();
    let http2 = tokio::time::timeout(Duration::from_secs(5), http2)
        .await
        .expect("the server closes an HTTP/2 connection with no stream")
        .unwrap();
    eprintln!(
        "idle timeout 1 s: a silent TCP connection closed after {silent:?}, an idle HTTP/2 \
         connection answering pings after {http2:?}"
    );
    assert!(silent < Duration::from_secs(3), "{silent:?}");
    assert!(http2 < Duration::from_secs(3), "{http2:?}");

    // The subscriber's connection has a stream open: still served.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut submitter = server.client().await;
    let comment = submitter
        .submit_comment(clean_submission(
            "idle-article",
            "Thank you for the careful reporting on the new library.",
        ))
        .await
        .expect("submits")
        .into_inner()
        .comment
        .expect("approved");
    let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the subscriber gets the comment")
        .expect("the stream is still open")
        .expect("an event");
    eprintln!("a subscription open for 3 s on an idle-timeout-1 s server still got {event:?}");
    assert!(format!("{event:?}").contains(&comment.id));
}

/// Waits until the server has `count` files open: the connections made
/// so far are accepted. (Its listen backlog is 128: a silent connection
/// dropped from a full accept queue would never be accepted, nor learn it.)
async fn wait_for_open_files(server: &Server, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.open_files() < count {
        assert!(
            Instant::now() < deadline,
            "the server accepted {} of {count} connections",
            server.open_files()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cost_little_and_all_are_closed() {
    const EACH: usize = 500;
    /// Connections opened at once, well within the listen backlog.
    const BATCH: usize = 50;
    const IDLE_TIMEOUT_SECS: u64 = 6;
    let server = Server::start(&["--idle-timeout-secs", &IDLE_TIMEOUT_SECS.to_string()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = server.rss_kib() as i64;
    let started = Instant::now();

    let fds = server.open_files();
    let mut silent = Vec::new();
    for batch in 0..EACH / BATCH {
        let mut opening = JoinSet::new();
        for _ in 0..BATCH {
            opening.spawn(silent_connection(server.addr));
        }
        silent.extend(opening.join_all().await);
        wait_for_open_files(&server, fds + (batch + 1) * BATCH).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with_silent = server.rss_kib() as i64;
    let mut senders = Vec::new();
    let mut http2 = Vec::new();
    for batch in 0..EACH / BATCH {
        let mut opening = JoinSet::new();
        for _ in 0..BATCH {
            opening.spawn(idle_http2_connection(server.addr));
        }
        for (sender, closed) in opening.join_all().await {
            senders.push(sender);
            http2.push(closed);
        }
        wait_for_open_files(&server, fds + EACH + (batch + 1) * BATCH).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with_both = server.rss_kib() as i64;
    let measured_at = started.elapsed();

    let mut slowest = Duration::ZERO;
    for closed in silent.into_iter().chain(http2) {
        let took = tokio::time::timeout(Duration::from_secs(IDLE_TIMEOUT_SECS + 5), closed)
            .await
            .expect("every idle connection is closed")
            .unwrap();
        slowest = slowest.max(took);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.rss_kib() as i64;
    eprintln!(
        "idle connections: RSS {base} KiB, {with_silent} KiB with {EACH} silent TCP connections \
         ({} bytes each), {with_both} KiB with {EACH} idle HTTP/2 ones too ({} bytes each; \
         measured {measured_at:?} after the first); all closed, the last {slowest:?} after it \
         opened (idle timeout {IDLE_TIMEOUT_SECS} s); RSS {after} KiB after",
        bytes_per(with_silent - base, EACH),
        bytes_per(with_both - with_silent, EACH),
    );
    assert!(measured_at < Duration::from_secs(IDLE_TIMEOUT_SECS));
    assert!(
        slowest < Duration::from_secs(IDLE_TIMEOUT_SECS + 3),
        "{slowest:?}"
    );
}
