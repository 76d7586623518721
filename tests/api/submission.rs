//! Idempotent retries, replies, rate limits and duplicates.

use std::time::Duration;

use commentd::api::pb::{self, Decision, Filter};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{list_all, spawn_app, spawn_app_with, submission, submit_approved};

fn keyed(text: &str, key: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        idempotency_key: key.to_owned(),
        ..submission("news/1", text, "client-1")
    }
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_response() {
    let mut app = spawn_app().await;
    let first = app
        .client
        .submit_comment(keyed("Hello there", "k1"))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    let retry = app
        .client
        .submit_comment(keyed("Hello there", "k1"))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.replayed);
    assert_eq!(retry.comment, first.comment);
    assert_eq!(retry.verdict, first.verdict);
    assert_eq!(list_all(&mut app.client, "news/1").await.len(), 1);
}

#[tokio::test]
async fn a_rejected_submission_is_replayed_too() {
    let mut app = spawn_app().await;
    let first = app
        .client
        .submit_comment(keyed("fuck you, go kill yourself", "k1"))
        .await
        .unwrap()
        .into_inner();
    let retry = app
        .client
        .submit_comment(keyed("fuck you, go kill yourself", "k1"))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.replayed);
    assert_eq!(retry.verdict, first.verdict);
}

#[tokio::test]
async fn the_same_key_with_a_different_comment_is_refused() {
    let mut app = spawn_app().await;
    app.client
        .submit_comment(keyed("Hello there", "k1"))
        .await
        .unwrap();
    let status = app
        .client
        .submit_comment(keyed("Something else", "k1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn idempotency_keys_are_scoped_by_client() {
    let mut app = spawn_app().await;
    app.client
        .submit_comment(keyed("Hello there", "k1"))
        .await
        .unwrap();
    let mut other = keyed("Hello there", "k1");
    other.client_id = "client-2".to_owned();
    let response = app.client.submit_comment(other).await.unwrap().into_inner();
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
            client
                .submit_comment(keyed("Only once", "same-key"))
                .await
                .unwrap()
                .into_inner()
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
    let reply = app
        .client
        .submit_comment(pb::SubmitCommentRequest {
            parent_id: parent.id.clone(),
            ..submission("news/1", "A reply", "c2")
        })
        .await
        .unwrap()
        .into_inner()
        .comment
        .unwrap();
    assert_eq!(reply.parent_id, parent.id);
}

#[tokio::test]
async fn a_reply_to_an_unknown_parent_is_not_found() {
    let mut app = spawn_app().await;
    let status = app
        .client
        .submit_comment(pb::SubmitCommentRequest {
            parent_id: "00000000000fffff".to_owned(),
            ..submission("news/1", "A reply", "c2")
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_reply_to_a_held_comment_or_another_articles_comment_fails_its_precondition() {
    let mut app = spawn_app().await;
    let held = app
        .client
        .submit_comment(submission("news/1", "this is shit", "c1"))
        .await
        .unwrap()
        .into_inner()
        .comment
        .unwrap();
    let elsewhere = submit_approved(&mut app.client, "news/2", "Elsewhere").await;
    for parent in [held.id, elsewhere.id] {
        let status = app
            .client
            .submit_comment(pb::SubmitCommentRequest {
                parent_id: parent,
                ..submission("news/1", "A reply", "c2")
            })
            .await
            .unwrap_err();
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
        app.client
            .submit_comment(submission("news/1", &format!("comment {i}"), "flooder"))
            .await
            .unwrap();
    }
    let status = app
        .client
        .submit_comment(submission("news/1", "one more", "flooder"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    let delay = retry.retry_delay.expect("a delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(3),
        "{delay:?}"
    );
    assert!(status.metadata().get("retry-after").is_some());
    // Another reader is unaffected.
    app.client
        .submit_comment(submission("news/1", "hello", "someone-else"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_same_text_from_the_same_client_is_rejected_as_a_duplicate() {
    let mut app = spawn_app_with(|config| config.duplicate_window = Duration::from_secs(600)).await;
    app.client
        .submit_comment(submission("news/1", "First!", "c1"))
        .await
        .unwrap();
    let verdict = app
        .client
        .submit_comment(submission("news/2", "first!", "c1"))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Rejected);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.filter() == Filter::Duplicate)
    );
    // Another client may say the same thing.
    let verdict = app
        .client
        .submit_comment(submission("news/1", "First!", "c2"))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Approved);
}
