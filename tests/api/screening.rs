//! Each decision with its reasons, and the dry-run CheckComment.

use commentd::api::pb::{self, Decision, Filter, Severity};

use crate::helpers::{
    check_verdict, get_comment, get_comment_error, list_all, spawn_app, spawn_app_with,
    submit_response, verdict_of,
};

#[tokio::test]
async fn a_clean_comment_is_approved_and_published() {
    let mut app = spawn_app().await;
    let text = "A balanced and useful piece, thank you.";
    let response = submit_response(&mut app.client, "news/1", text, "c1").await;
    let verdict = response.verdict.unwrap();
    assert_eq!(verdict.decision(), Decision::Approved);
    assert!(verdict.reasons.is_empty());
    let comment = response.comment.unwrap();
    assert_eq!(comment.state(), pb::CommentState::Published);
    assert_eq!(comment.article_id, "news/1");
    assert_eq!(comment.id.len(), 16);
    assert!(comment.create_time.is_some());
    let fetched = get_comment(&mut app.client, &comment.id).await;
    assert_eq!(fetched, comment);
}

#[tokio::test]
async fn severe_profanity_is_rejected_with_category_and_severity_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let response = submit_response(
        &mut app.client,
        "news/1",
        "fuck you, go kill yourself",
        "c1",
    )
    .await;
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
    let listed = list_all(&mut app.client, "news/1").await;
    assert!(listed.is_empty());
}

#[tokio::test]
async fn moderate_profanity_is_held_and_not_published() {
    let mut app = spawn_app().await;
    let response = submit_response(&mut app.client, "news/1", "this is shit", "c1").await;
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
    let status = get_comment_error(&mut app.client, &held.id).await;
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(list_all(&mut app.client, "news/1").await.is_empty());
}

#[tokio::test]
async fn too_many_links_are_held_as_spam() {
    let mut app = spawn_app().await;
    let text = "Great deals at http://a.example http://b.example and www.c.example";
    let verdict = verdict_of(&mut app.client, "news/1", text, "c1").await;
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
    let text = "THIS IS THE WORST ARTICLE I HAVE EVER READ";
    let mut app = spawn_app().await;
    let verdict = verdict_of(&mut app.client, "news/1", text, "c1").await;
    assert_eq!(verdict.decision(), Decision::Approved);
    assert!(verdict.reasons.iter().any(|r| r.code == "spam.shouting"));

    let mut app = spawn_app_with(|config| config.spam.hold_style = true).await;
    let verdict = verdict_of(&mut app.client, "news/1", text, "c1").await;
    assert_eq!(verdict.decision(), Decision::Held);
    assert!(verdict.reasons.iter().any(|r| r.code == "spam.shouting"));
}

#[tokio::test]
async fn mild_language_is_approved_with_a_censored_text() {
    let mut app = spawn_app().await;
    let verdict = verdict_of(&mut app.client, "news/1", "this is crap reporting", "c1").await;
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
    let verdict = verdict_of(&mut app.client, "news/1", "this is shit", "c1").await;
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
        let verdict = check_verdict(&mut app.client, "fuck you, go kill yourself", "Reader").await;
        assert_eq!(verdict.decision(), Decision::Rejected);
    }
    for _ in 0..3 {
        check_verdict(&mut app.client, "Same text", "Reader").await;
    }
    // Neither the rate limit (burst 1) nor the duplicate memory was touched.
    let verdict = verdict_of(&mut app.client, "news/1", "Same text", "c1").await;
    assert_eq!(verdict.decision(), Decision::Approved);
}

#[tokio::test]
async fn check_comment_needs_no_author_name() {
    let mut app = spawn_app().await;
    let verdict = check_verdict(&mut app.client, "fuck you, go kill yourself", "").await;
    assert_eq!(verdict.decision(), Decision::Rejected);
}

#[tokio::test]
async fn insults_without_swear_words_are_held_with_a_toxicity_reason_and_stored_for_review() {
    let mut app = spawn_app().await;
    for (i, text) in [
        "Pure and simple, idiots!",
        "and a lefty loser makes a stupid point about nothing",
    ]
    .into_iter()
    .enumerate()
    {
        let response = submit_response(&mut app.client, "news/1", text, &format!("t{i}")).await;
        let verdict = response.verdict.unwrap();
        assert_eq!(verdict.decision(), Decision::Held, "{text}");
        let reason = verdict
            .reasons
            .iter()
            .find(|r| r.filter() == Filter::Toxicity)
            .expect("a toxicity reason");
        assert_eq!(reason.code, "toxicity.model");
        assert!(
            reason.message.contains("strongest words"),
            "{}",
            reason.message
        );
        let comment = response.comment.expect("a held comment is kept for review");
        assert_eq!(comment.state(), pb::CommentState::Held);
    }
}

#[tokio::test]
async fn mild_language_and_news_vocabulary_are_approved() {
    let mut app = spawn_app().await;
    for text in [
        "This is damn good journalism.",
        "Older release comment 3 about the budget vote.",
        "The CPI release is on the statistics site: https://www.bls.gov/news.release/cpi.nr0.htm",
    ] {
        let verdict = check_verdict(&mut app.client, text, "Reader").await;
        assert_eq!(
            verdict.decision(),
            Decision::Approved,
            "{text}: {verdict:?}"
        );
    }
    // Its "hell" is informational; the toxicity model holds it for
    // "wrong, government" (docs/FILTERS.md, known failures).
    let text = "What the hell is wrong with this government?";
    let verdict = check_verdict(&mut app.client, text, "Reader").await;
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.code == "profanity.mild" && r.decision() == Decision::Approved),
        "{verdict:?}"
    );
    assert!(
        verdict
            .reasons
            .iter()
            .filter(|r| r.code.starts_with("profanity"))
            .all(|r| r.decision() == Decision::Approved),
        "{verdict:?}"
    );
}

/// The hand-written ordinary news comments of `tests/data/news_ordinary.txt`
/// (a test set, never trained on) through the real API: a regression floor
/// on false positives; docs/FILTERS.md reports the figure and the misses.
#[tokio::test]
async fn ordinary_news_comments_are_approved() {
    let mut app = spawn_app().await;
    let lines = include_str!("../data/news_ordinary.txt");
    let (mut total, mut approved) = (0, 0);
    for line in lines
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        total += 1;
        if check_verdict(&mut app.client, line, "Reader")
            .await
            .decision()
            == Decision::Approved
        {
            approved += 1;
        }
    }
    assert!(total >= 300, "{total}");
    let share = approved as f64 / total as f64;
    assert!(share >= 0.94, "{approved} of {total} approved");
}
