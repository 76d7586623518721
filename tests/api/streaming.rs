//! Live streams: new comments, gap-free resume, slow subscribers, shutdown.

use std::{collections::HashSet, time::Duration};

use commentd::api::pb::{self, subscribe_comments_response::Event};
use tokio::time::timeout;
use tonic::{Code, Streaming};

use crate::helpers::{
    connect_with_small_windows, list_all, spawn_app, spawn_app_with, submit_approved,
    submit_response, subscribe, subscribe_error, without_profanity_filter,
};

async fn next_comment(stream: &mut Streaming<pb::SubscribeCommentsResponse>) -> pb::Comment {
    let message = timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("the stream is healthy")
        .expect("the stream is open");
    match message.event.expect("an event") {
        Event::Comment(comment) => comment,
        Event::CommentRemoved(removed) => panic!("unexpected removal: {removed:?}"),
    }
}

async fn assert_quiet(stream: &mut Streaming<pb::SubscribeCommentsResponse>) {
    if let Ok(message) = timeout(Duration::from_millis(300), stream.message()).await {
        panic!("unexpected event: {message:?}");
    }
}

#[tokio::test]
async fn a_subscriber_receives_new_comments_of_its_article_only() {
    let mut app = spawn_app().await;
    submit_approved(&mut app.client, "news/1", "An earlier remark").await;
    let mut stream = subscribe(&mut app.client.clone(), "news/1", "").await;
    submit_approved(&mut app.client, "news/2", "Other article").await;
    let held = submit_response(&mut app.client, "news/1", "this is shit", "c1").await;
    assert_eq!(held.verdict.unwrap().decision(), pb::Decision::Held);
    let live = submit_approved(&mut app.client, "news/1", "Live one").await;
    assert_eq!(next_comment(&mut stream).await, live);
    assert_quiet(&mut stream).await;
}

#[tokio::test]
async fn resuming_replays_after_the_cursor_then_continues_live() {
    let mut app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            submit_approved(&mut app.client, "news/1", &format!("c{i}"))
                .await
                .id,
        );
    }
    let mut stream = subscribe(&mut app.client.clone(), "news/1", &ids[1]).await;
    for expected in &ids[2..] {
        assert_eq!(&next_comment(&mut stream).await.id, expected);
    }
    let live = submit_approved(&mut app.client, "news/1", "live").await;
    assert_eq!(next_comment(&mut stream).await.id, live.id);
    assert_quiet(&mut stream).await;
}

#[tokio::test]
async fn resuming_while_comments_arrive_concurrently_has_no_gap_and_no_duplicate() {
    let mut app = spawn_app_with(without_profanity_filter).await;
    let mut cursor = String::new();
    for i in 0..100 {
        let id = submit_approved(&mut app.client, "news/hot", &format!("before {i}"))
            .await
            .id;
        if i == 49 {
            cursor = id;
        }
    }
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                for i in 0..75 {
                    submit_approved(&mut client, "news/hot", &format!("writer {writer} #{i}"))
                        .await;
                }
            })
        })
        .collect();
    // Subscribe while the writers are busy.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut stream = subscribe(&mut app.new_client().await, "news/hot", &cursor).await;
    for writer in writers {
        writer.await.unwrap();
    }
    let expected: Vec<String> = list_all(&mut app.client, "news/hot")
        .await
        .into_iter()
        .map(|c| c.id)
        .filter(|id| *id > cursor)
        .collect();
    assert_eq!(expected.len(), 50 + 300);
    let mut received = Vec::new();
    while received.len() < expected.len() {
        received.push(next_comment(&mut stream).await.id);
    }
    assert_eq!(received, expected, "exact sequence across the hand-over");
    assert_quiet(&mut stream).await;
}

#[tokio::test]
async fn a_slow_subscriber_does_not_stall_a_fast_one_and_catches_up_without_loss() {
    let mut app = spawn_app_with(|config| {
        without_profanity_filter(config);
        config.stream_buffer = 4;
    })
    .await;
    let mut slow = subscribe(
        &mut connect_with_small_windows(app.addr).await,
        "news/1",
        "",
    )
    .await;
    let mut fast = subscribe(&mut app.new_client().await, "news/1", "").await;
    let padding = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(35);
    let mut ids = Vec::new();
    for i in 0..300 {
        let id = submit_approved(&mut app.client, "news/1", &format!("{i} {padding}"))
            .await
            .id;
        assert_eq!(
            next_comment(&mut fast).await.id,
            id,
            "the fast reader keeps up"
        );
        ids.push(id);
    }
    // Far more than the buffers hold was sent while the slow reader slept;
    // it now receives every comment, in order, exactly once.
    let mut received = Vec::new();
    while received.len() < ids.len() {
        received.push(next_comment(&mut slow).await.id);
    }
    assert_eq!(received, ids);
    assert_quiet(&mut slow).await;
}

#[tokio::test]
async fn a_cursor_never_issued_is_out_of_range() {
    let mut app = spawn_app().await;
    submit_approved(&mut app.client, "news/1", "one").await;
    let status = subscribe_error(&mut app.client, "news/1", "0000000000ffffff").await;
    assert_eq!(status.code(), Code::OutOfRange);
}

#[tokio::test]
async fn many_streams_share_one_connection_and_unary_calls_still_pass() {
    let app = spawn_app_with(|config| {
        config.max_concurrent_streams = 4_000;
        config.connections.max_subscriptions_per_connection = 4_000;
        config.calls.max_streams_per_address = 4_000;
    })
    .await;
    let client = app.new_client().await;
    let mut streams = Vec::new();
    for i in 0..3000 {
        let mut client = client.clone();
        streams.push(subscribe(&mut client, &format!("news/{}", i % 10), "").await);
    }
    let mut unary = client.clone();
    let comment = submit_approved(&mut unary, "news/3", "to three hundred").await;
    let mut seen = HashSet::new();
    for (i, stream) in streams.iter_mut().enumerate() {
        if i % 10 == 3 {
            seen.insert(next_comment(stream).await.id);
        }
    }
    assert_eq!(seen, HashSet::from([comment.id]));
    drop(streams);
}

#[tokio::test]
async fn shutdown_ends_streams_with_unavailable() {
    let mut app = spawn_app().await;
    let mut stream = subscribe(&mut app.new_client().await, "news/1", "").await;
    submit_approved(&mut app.client, "news/1", "hello").await;
    next_comment(&mut stream).await;
    let stopping = tokio::spawn(app.stop());
    let status = timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends promptly")
        .expect_err("with a status");
    assert_eq!(status.code(), Code::Unavailable);
    timeout(Duration::from_secs(15), stopping)
        .await
        .expect("shutdown completes")
        .unwrap();
}
