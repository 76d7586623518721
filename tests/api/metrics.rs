//! `/metrics` (issue 13): known traffic, scraped, counted exactly.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use commentd::{api::pb, screening::rate_limit::RatePolicy};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;

use crate::helpers::{spawn_app_with, submission, submit, submit_error, subscribe};

/// One scrape, as `name{labels}` → value (labels as exposed, sorted by the
/// server in declaration order).
pub async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let mut stream = TcpStream::connect(addr).await.expect("metrics listener");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: commentd\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Scrapes until every expectation holds (counters are recorded when a
/// response finishes, a moment after the client has it), then returns the
/// scrape; panics with the differences after a few seconds.
async fn scrape_until(addr: SocketAddr, expected: &[(&str, f64)]) -> HashMap<String, f64> {
    let mut last = HashMap::new();
    for _ in 0..50 {
        last = scrape(addr).await;
        if expected
            .iter()
            .all(|(name, value)| last.get(*name) == Some(value))
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let differences: Vec<_> = expected
        .iter()
        .filter(|(name, value)| last.get(*name) != Some(value))
        .map(|(name, value)| format!("{name}: expected {value}, got {:?}", last.get(*name)))
        .collect();
    panic!("metrics differ:\n{}", differences.join("\n"));
}

const SUBMIT: &str = "comments.v1.CommentService/SubmitComment";

#[tokio::test]
async fn scraped_counters_match_the_traffic_exactly() {
    let mut app = spawn_app_with(|config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.rate = RatePolicy {
            burst: 2,
            interval: Duration::from_secs(3600),
        };
    })
    .await;
    let metrics = app.metrics_addr.expect("metrics are served");
    let mut stream = subscribe(&mut app.client.clone(), "news/metrics", "").await;

    // Two approved from one client, whose third call is rate-limited.
    for n in 0..2 {
        let response = submit(
            &mut app.client,
            submission(
                "news/metrics",
                &format!("A fair point, number {n}."),
                "flood",
            ),
        )
        .await;
        assert_eq!(response.verdict.unwrap().decision(), pb::Decision::Approved);
    }
    let limited = submit_error(
        &mut app.client,
        submission("news/metrics", "One more fair point.", "flood"),
    )
    .await;
    assert_eq!(limited.code(), Code::ResourceExhausted);
    let held = submit(
        &mut app.client,
        submission("news/metrics", "this is shit", "c2"),
    )
    .await;
    assert_eq!(held.verdict.unwrap().decision(), pb::Decision::Held);
    let rejected = submit(
        &mut app.client,
        submission("news/metrics", "fuck you, go kill yourself", "c3"),
    )
    .await;
    assert_eq!(rejected.verdict.unwrap().decision(), pb::Decision::Rejected);
    let invalid = submit_error(&mut app.client, submission("news/metrics", "", "c4")).await;
    assert_eq!(invalid.code(), Code::InvalidArgument);
    for _ in 0..2 {
        stream
            .message()
            .await
            .unwrap()
            .expect("the approved comments stream");
    }

    let scraped = scrape_until(
        metrics,
        &[
            ("commentd_submissions_total{decision=\"approved\"}", 2.0),
            ("commentd_submissions_total{decision=\"held\"}", 1.0),
            ("commentd_submissions_total{decision=\"rejected\"}", 1.0),
            ("commentd_rate_limited_total{limit=\"client_id\"}", 1.0),
            (
                &format!("commentd_rpc_requests_total{{method=\"{SUBMIT}\",code=\"OK\"}}"),
                4.0,
            ),
            (
                &format!(
                    "commentd_rpc_requests_total{{method=\"{SUBMIT}\",code=\"INVALID_ARGUMENT\"}}"
                ),
                1.0,
            ),
            (
                &format!(
                    "commentd_rpc_requests_total{{method=\"{SUBMIT}\",code=\"RESOURCE_EXHAUSTED\"}}"
                ),
                1.0,
            ),
            (
                &format!("commentd_rpc_duration_seconds_count{{method=\"{SUBMIT}\"}}"),
                6.0,
            ),
            ("commentd_subscribers", 1.0),
            ("commentd_held_comments", 1.0),
            ("commentd_commit_batch_appends_sum", 4.0),
            ("commentd_serving", 1.0),
        ],
    )
    .await;
    assert!(
        scraped
            .get("commentd_store_size_bytes")
            .is_some_and(|size| *size > 0.0)
    );
    assert!(
        scraped
            .get("commentd_disk_free_bytes")
            .is_some_and(|free| *free > 0.0)
    );
    assert!(
        scraped
            .keys()
            .any(|name| name.starts_with("commentd_build_info{version="))
    );
    assert!(
        scraped
            .get("commentd_screening_duration_seconds_count")
            .is_some_and(|count| *count >= 4.0)
    );
    // The held and the rejected comment each have a profanity finding.
    let profanity: f64 = scraped
        .iter()
        .filter(|(name, _)| {
            name.starts_with("commentd_screening_reasons_total{filter=\"profanity\"")
        })
        .map(|(_, count)| count)
        .sum();
    assert!(profanity >= 2.0, "{scraped:#?}");

    // The stream's end is counted once the client leaves.
    drop(stream);
    scrape_until(
        metrics,
        &[
            ("commentd_subscribers", 0.0),
            (
                "commentd_rpc_requests_total{method=\"comments.v1.CommentService/SubscribeComments\",code=\"CANCELLED\"}",
                1.0,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn two_servers_in_one_process_count_apart() {
    let listen = |config: &mut commentd::Config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    };
    let mut first = spawn_app_with(listen).await;
    let second = spawn_app_with(listen).await;
    submit(
        &mut first.client,
        submission("news/1", "Hello there.", "c1"),
    )
    .await;
    scrape_until(
        first.metrics_addr.unwrap(),
        &[("commentd_submissions_total{decision=\"approved\"}", 1.0)],
    )
    .await;
    let other = scrape(second.metrics_addr.unwrap()).await;
    assert_eq!(
        other.get("commentd_submissions_total{decision=\"approved\"}"),
        None
    );
}

/// Metric names (`commentd_…`) that a file's queries use.
fn metric_names_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("commentd_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.insert(name);
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_rules_use_is_exported() {
    let mut app = spawn_app_with(|config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.rate = RatePolicy {
            burst: 1,
            interval: Duration::from_secs(3600),
        };
        config.connections.max_subscriptions_per_connection = 1;
    })
    .await;
    // Enough traffic that every labelled family has a series.
    submit(&mut app.client, submission("news/1", "this is shit", "c1")).await;
    submit_error(&mut app.client, submission("news/1", "again", "c1")).await;
    let mut client = app.new_client().await;
    let _stream = subscribe(&mut client, "news/1", "").await;
    let refused = client
        .subscribe_comments(pb::SubscribeCommentsRequest {
            article_id: "news/2".to_owned(),
            after_comment_id: String::new(),
        })
        .await
        .expect_err("one subscription per connection");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let exported: std::collections::BTreeSet<String> = scrape_until(
        app.metrics_addr.unwrap(),
        &[(
            "commentd_capacity_refusals_total{limit=\"subscriptions_per_connection\"}",
            1.0,
        )],
    )
    .await
    .keys()
    .map(|key| key.split('{').next().unwrap().to_owned())
    .collect();

    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "deploy/grafana/commentd.json",
        "deploy/prometheus/commentd.rules.yml",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let used = metric_names_in(&text);
        assert!(used.len() >= 8, "{file} uses only {used:?}");
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics the binary does not export: {missing:?}"
        );
    }
}
