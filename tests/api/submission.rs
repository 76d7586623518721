//! Idempotent retries, replies, rate limits and duplicates.

use std::time::Duration;

use commentd::api::pb::{self, Decision, Filter};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{
    list_all, spawn_app, spawn_app_with, submission, submit, submit_approved, submit_error,
    submit_response, verdict_of,
};

fn keyed(text: &str, key: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        idempotency_key: key.to_owned(),
        ..submission("news/1", text, "client-1")
    }
}

/// "A reply" on news/1 from client c2 to the comment `parent`.
fn reply_to(parent: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        parent_id: parent.to_owned(),
        ..submission("news/1", "A reply", "c2")
    }
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_response() {
    let mut app = spawn_app().await;
    let first = submit(&mut app.client, keyed("Hello there", "k1")).await;
    assert!(!first.replayed);
    let retry = submit(&mut app.client, keyed("Hello there", "k1")).await;
    assert!(retry.replayed);
    assert_eq!(retry.comment, first.comment);
    assert_eq!(retry.verdict, first.verdict);
    assert_eq!(list_all(&mut app.client, "news/1").await.len(), 1);
}

#[tokio::test]
async fn a_rejected_submission_is_replayed_too() {
    let mut app = spawn_app().await;
    let text = "fuck you, go kill yourself";
    let first = submit(&mut app.client, keyed(text, "k1")).await;
    let retry = submit(&mut app.client, keyed(text, "k1")).await;
    assert!(retry.replayed);
    assert_eq!(retry.verdict, first.verdict);
}

#[tokio::test]
async fn the_same_key_with_a_different_comment_is_refused() {
    let mut app = spawn_app().await;
    submit(&mut app.client, keyed("Hello there", "k1")).await;
    let status = submit_error(&mut app.client, keyed("Something else", "k1")).await;
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn idempotency_keys_are_scoped_by_client() {
    let mut app = spawn_app().await;
    submit(&mut app.client, keyed("Hello there", "k1")).await;
    let mut other = keyed("Hello there", "k1");
    other.client_id = "client-2".to_owned();
    let response = submit(&mut app.client, other).await;
    assert!(!response.replayed);
    assert_eq!(list_all(&mut app.client, "news/1").await.len(), 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_store_one_comment() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut client = app.client.clone();
        tasks.push(tokio::spawn(async move {
            submit(&mut client, keyed("Only once", "same-key")).await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().comment.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let mut client = app.client.clone();
    assert_eq!(list_all(&mut client, "news/1").await.len(), 1);
}

#[tokio::test]
async fn a_reply_to_an_approved_comment_of_the_same_article_is_accepted() {
    let mut app = spawn_app().await;
    let parent = submit_approved(&mut app.client, "news/1", "Parent").await;
    let reply = submit(&mut app.client, reply_to(&parent.id)).await;
    let reply = reply.comment.unwrap();
    assert_eq!(reply.parent_id, parent.id);
}

#[tokio::test]
async fn a_reply_to_an_unknown_parent_is_not_found() {
    let mut app = spawn_app().await;
    let status = submit_error(&mut app.client, reply_to("00000000000fffff")).await;
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_reply_to_a_held_comment_or_another_articles_comment_fails_its_precondition() {
    let mut app = spawn_app().await;
    let held = submit_response(&mut app.client, "news/1", "this is shit", "c1")
        .await
        .comment
        .unwrap();
    let elsewhere = submit_approved(&mut app.client, "news/2", "Elsewhere").await;
    for parent in [held.id, elsewhere.id] {
        let status = submit_error(&mut app.client, reply_to(&parent)).await;
        assert_eq!(status.code(), Code::FailedPrecondition);
    }
}

#[tokio::test]
async fn a_flooding_client_is_refused_with_a_retry_hint_and_others_are_not() {
    let mut app = spawn_app_with(|config| {
        config.rate.burst = 3;
        config.rate.interval = Duration::from_secs(3);
    })
    .await;
    for i in 0..3 {
        submit_response(
            &mut app.client,
            "news/1",
            &format!("comment {i}"),
            "flooder",
        )
        .await;
    }
    let status = submit_error(&mut app.client, submission("news/1", "one more", "flooder")).await;
    assert_eq!(status.code(), Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    let delay = retry.retry_delay.expect("a delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(3),
        "{delay:?}"
    );
    assert!(status.metadata().get("retry-after").is_some());
    // Another reader is unaffected.
    submit_response(&mut app.client, "news/1", "hello", "someone-else").await;
}

#[tokio::test]
async fn the_same_text_from_the_same_client_is_rejected_as_a_duplicate() {
    let mut app = spawn_app_with(|config| config.duplicate_window = Duration::from_secs(600)).await;
    submit_response(&mut app.client, "news/1", "First!", "c1").await;
    let verdict = verdict_of(&mut app.client, "news/2", "first!", "c1").await;
    assert_eq!(verdict.decision(), Decision::Rejected);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.filter() == Filter::Duplicate)
    );
    // Another client may say the same thing.
    let verdict = verdict_of(&mut app.client, "news/1", "First!", "c2").await;
    assert_eq!(verdict.decision(), Decision::Approved);
}
