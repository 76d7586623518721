//! Each decision with its reasons, and the dry-run CheckComment.

use commentd::api::pb::{self, Decision, Filter, Severity};

use crate::helpers::{spawn_app, spawn_app_with, submission};

#[tokio::test]
async fn a_clean_comment_is_approved_and_published() {
    let mut app = spawn_app().await;
    let response = app
        .client
        .submit_comment(submission(
            "news/1",
            "A balanced and useful piece, thank you.",
            "c1",
        ))
        .await
        .unwrap()
        .into_inner();
    let verdict = response.verdict.unwrap();
    assert_eq!(verdict.decision(), Decision::Approved);
    assert!(verdict.reasons.is_empty());
    let comment = response.comment.unwrap();
    assert_eq!(comment.state(), pb::CommentState::Published);
    assert_eq!(comment.article_id, "news/1");
    assert_eq!(comment.id.len(), 16);
    assert!(comment.create_time.is_some());
    let fetched = app
        .client
        .get_comment(pb::GetCommentRequest {
            comment_id: comment.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .comment
        .unwrap();
    assert_eq!(fetched, comment);
}

#[tokio::test]
async fn severe_profanity_is_rejected_with_category_and_severity_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let response = app
        .client
        .submit_comment(submission("news/1", "fuck you, go kill yourself", "c1"))
        .await
        .unwrap()
        .into_inner();
    assert!(response.comment.is_none());
    let verdict = response.verdict.unwrap();
    assert_eq!(verdict.decision(), Decision::Rejected);
    let severe = verdict
        .reasons
        .iter()
        .find(|r| r.filter() == Filter::Profanity && r.severity() == Severity::Severe)
        .expect("a severe profanity reason");
    assert!(!severe.category.is_empty());
    assert!(severe.code.starts_with("profanity."));
    assert!(verdict.censored_text.contains('*'));
    let listed = crate::helpers::list_all(&mut app.client, "news/1").await;
    assert!(listed.is_empty());
}

#[tokio::test]
async fn moderate_profanity_is_held_and_not_published() {
    let mut app = spawn_app().await;
    let response = app
        .client
        .submit_comment(submission("news/1", "this is shit", "c1"))
        .await
        .unwrap()
        .into_inner();
    let verdict = response.verdict.unwrap();
    assert_eq!(verdict.decision(), Decision::Held, "{verdict:?}");
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.decision() == Decision::Held)
    );
    let held = response.comment.expect("a held comment is stored");
    assert_eq!(held.state(), pb::CommentState::Held);
    let status = app
        .client
        .get_comment(pb::GetCommentRequest {
            comment_id: held.id,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(
        crate::helpers::list_all(&mut app.client, "news/1")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn too_many_links_are_held_as_spam() {
    let mut app = spawn_app().await;
    let text = "Great deals at http://a.example http://b.example and www.c.example";
    let verdict = app
        .client
        .submit_comment(submission("news/1", text, "c1"))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Held);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.filter() == Filter::Spam && r.code == "spam.too_many_links")
    );
}

#[tokio::test]
async fn shouting_is_an_informational_reason_unless_configured_to_hold() {
    let mut app = spawn_app().await;
    let verdict = app
        .client
        .submit_comment(submission(
            "news/1",
            "THIS IS THE WORST ARTICLE I HAVE EVER READ",
            "c1",
        ))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Approved);
    assert!(verdict.reasons.iter().any(|r| r.code == "spam.shouting"));

    let mut app = spawn_app_with(|config| config.spam.hold_style = true).await;
    let verdict = app
        .client
        .submit_comment(submission(
            "news/1",
            "THIS IS THE WORST ARTICLE I HAVE EVER READ",
            "c1",
        ))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Held);
    assert!(verdict.reasons.iter().any(|r| r.code == "spam.shouting"));
}

#[tokio::test]
async fn mild_language_is_approved_with_a_censored_text() {
    let mut app = spawn_app().await;
    let verdict = app
        .client
        .submit_comment(submission("news/1", "this is crap reporting", "c1"))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Approved);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.severity() == Severity::Mild)
    );
    assert!(verdict.censored_text.contains('*'));
}

#[tokio::test]
async fn profanity_thresholds_come_from_the_configuration() {
    let mut app = spawn_app_with(|config| {
        config.profanity.hold_at = None;
        config.profanity.reject_at = None;
    })
    .await;
    let verdict = app
        .client
        .submit_comment(submission("news/1", "this is shit", "c1"))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Approved);
}

#[tokio::test]
async fn check_comment_screens_without_storing_or_counting() {
    let mut app = spawn_app_with(|config| {
        config.rate.burst = 1;
        config.duplicate_window = std::time::Duration::from_secs(600);
    })
    .await;
    for _ in 0..5 {
        let verdict = app
            .client
            .check_comment(pb::CheckCommentRequest {
                text: "fuck you, go kill yourself".to_owned(),
                author_name: "Reader".to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .verdict
            .unwrap();
        assert_eq!(verdict.decision(), Decision::Rejected);
    }
    for _ in 0..3 {
        app.client
            .check_comment(pb::CheckCommentRequest {
                text: "Same text".to_owned(),
                author_name: "Reader".to_owned(),
            })
            .await
            .unwrap();
    }
    // Neither the rate limit (burst 1) nor the duplicate memory was touched.
    let verdict = app
        .client
        .submit_comment(submission("news/1", "Same text", "c1"))
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Approved);
}

#[tokio::test]
async fn check_comment_needs_no_author_name() {
    let mut app = spawn_app().await;
    let verdict = app
        .client
        .check_comment(pb::CheckCommentRequest {
            text: "fuck you, go kill yourself".to_owned(),
            author_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), Decision::Rejected);
}
