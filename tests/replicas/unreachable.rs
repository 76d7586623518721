//! Without its log a replica says so: NOT_SERVING, and submissions fail
//! with UNAVAILABLE in bounded time; it recovers by itself.

use std::time::{Duration, Instant};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{nats::NatsCluster, replica_flags, server::Server, submission};

async fn status(server: &Server) -> ServingStatus {
    HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status())
        .unwrap_or(ServingStatus::Unknown)
}

async fn wait_status(server: &Server, wanted: ServingStatus, limit: Duration) -> Duration {
    let started = Instant::now();
    while status(server).await != wanted {
        assert!(started.elapsed() < limit, "not {wanted:?} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_log_means_not_serving_and_unavailable_never_a_hang() {
    let mut cluster = NatsCluster::start(1);
    let flags = replica_flags(&cluster.urls(), "1", &["--log-timeout-ms", "1000"]);
    let server = Server::start(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    let mut client = server.client().await;
    client
        .submit_comment(submission("down", "reader", "Before the outage.", "k1"))
        .await
        .expect("stored");
    cluster.kill(0);
    let noticed = wait_status(&server, ServingStatus::NotServing, Duration::from_secs(10)).await;
    let asked = Instant::now();
    let refused = client
        .submit_comment(submission("down", "reader", "During the outage.", "k2"))
        .await
        .expect_err("no log, no acknowledgement");
    let answered = asked.elapsed();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        answered < Duration::from_secs(3),
        "answered in {answered:?}"
    );
    cluster.restart(0);
    let back = wait_status(&server, ServingStatus::Serving, Duration::from_secs(20)).await;
    let stored = client
        .submit_comment(submission("down", "reader", "During the outage.", "k2"))
        .await
        .expect("stored once the log is back")
        .into_inner();
    assert!(stored.comment.is_some());
    eprintln!(
        "log down: NOT_SERVING after {noticed:?}, a submission answered UNAVAILABLE in {answered:?}; SERVING again {back:?} after the restart"
    );
}
