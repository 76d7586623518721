//! ModerationService: authentication, the review queue, actions, article
//! settings, term lists, bans, audit, and what live subscribers see.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use commentd::api::pb::{self, subscribe_comments_response::Event};
use tokio::time::timeout;
use tonic::{Code, Streaming};

use crate::helpers::{
    ALICE_TOKEN, BOB_TOKEN, Moderation, TestApp, get_comment, get_comment_error, list_all,
    spawn_app, spawn_app_in, submission, submit_approved, submit_error, submit_response, subscribe,
    verdict_of,
};

const HELD_TEXT: &str = "this is shit";

async fn submit_held(app: &mut TestApp, article: &str, client: &str) -> pb::Comment {
    let response = submit_response(&mut app.client, article, HELD_TEXT, client).await;
    assert_eq!(response.verdict.unwrap().decision(), pb::Decision::Held);
    response.comment.unwrap()
}

async fn moderate(
    moderation: &mut Moderation,
    id: &str,
    action: pb::Action,
) -> Result<pb::Comment, tonic::Status> {
    moderation
        .moderate_comment(pb::ModerateCommentRequest {
            comment_id: id.to_owned(),
            action: action as i32,
            note: "checked".to_owned(),
        })
        .await
        .map(|r| r.into_inner().comment.unwrap())
}

/// A live stream of `article` after `after`, on a connection of its own.
async fn watch(
    app: &TestApp,
    article: &str,
    after: &str,
) -> Streaming<pb::SubscribeCommentsResponse> {
    subscribe(&mut app.new_client().await, article, after).await
}

async fn next_event(stream: &mut Streaming<pb::SubscribeCommentsResponse>) -> Event {
    timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap()
        .event
        .unwrap()
}

/// The review queue (all articles, default page).
async fn held_queue(moderation: &mut Moderation) -> pb::ListHeldCommentsResponse {
    moderation
        .list_held_comments(pb::ListHeldCommentsRequest::default())
        .await
        .unwrap()
        .into_inner()
}

async fn article_settings(moderation: &mut Moderation, article: &str) -> pb::ArticleSettings {
    moderation
        .get_article(pb::GetArticleRequest {
            article_id: article.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap()
}

async fn add_terms(
    moderation: &mut Moderation,
    terms: &[&str],
    effect: pb::TermEffect,
) -> Result<tonic::Response<pb::AddTermsResponse>, tonic::Status> {
    moderation
        .add_terms(pb::AddTermsRequest {
            terms: terms.iter().map(|t| t.to_string()).collect(),
            effect: effect as i32,
        })
        .await
}

/// The first page of audit events matching the request that `configure`
/// makes of the default one.
async fn audit_events(
    moderation: &mut Moderation,
    configure: impl FnOnce(&mut pb::ListAuditEventsRequest),
) -> Vec<pb::AuditEvent> {
    let mut request = pb::ListAuditEventsRequest::default();
    configure(&mut request);
    moderation
        .list_audit_events(request)
        .await
        .unwrap()
        .into_inner()
        .audit_events
}

async fn unban(moderation: &mut Moderation, client_id: &str) -> Result<(), tonic::Status> {
    moderation
        .unban_client(pb::UnbanClientRequest {
            client_id: client_id.to_owned(),
        })
        .await
        .map(drop)
}

async fn update_article(moderation: &mut Moderation, article: &str, settings: pb::ArticleSettings) {
    moderation
        .update_article(pb::UpdateArticleRequest {
            article_id: article.to_owned(),
            settings: Some(settings),
        })
        .await
        .unwrap();
}

/// A server on whose article "news/1" alice has set the settings that
/// `configure` makes of the defaults; with alice's moderation client.
async fn spawn_with_news_1(
    configure: impl FnOnce(&mut pb::ArticleSettings),
) -> (TestApp, Moderation) {
    let app = spawn_app().await;
    let mut alice = app.alice().await;
    let mut settings = pb::ArticleSettings::default();
    configure(&mut settings);
    update_article(&mut alice, "news/1", settings).await;
    (app, alice)
}

#[tokio::test]
async fn moderation_needs_a_known_bearer_token_and_comments_stay_public() {
    let mut app = spawn_app().await;
    for token in [None, Some("wrong-token-0123456789")] {
        let mut moderation = app.moderation(token).await;
        let status = moderation
            .list_held_comments(pb::ListHeldCommentsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
        let status = moderation
            .moderate_comment(pb::ModerateCommentRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    app.alice()
        .await
        .list_terms(pb::ListTermsRequest {})
        .await
        .unwrap();
    submit_approved(&mut app.client, "news/1", "Public as ever").await;
}

#[tokio::test]
async fn the_review_queue_shows_held_comments_oldest_first_with_their_reasons() {
    let mut app = spawn_app().await;
    let first = submit_held(&mut app, "news/1", "c1").await;
    let second = submit_held(&mut app, "news/2", "c2").await;
    let third = submit_held(&mut app, "news/1", "c3").await;
    submit_approved(&mut app.client, "news/1", "Clean one").await;
    let mut alice = app.alice().await;

    let all = held_queue(&mut alice).await;
    let ids: Vec<_> = all
        .held_comments
        .iter()
        .map(|h| h.comment.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, [first.id.clone(), second.id.clone(), third.id.clone()]);
    let held = &all.held_comments[0];
    assert_eq!(held.client_id, "c1");
    assert!(
        held.verdict
            .as_ref()
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.decision() == pb::Decision::Held)
    );

    let page = alice
        .list_held_comments(pb::ListHeldCommentsRequest {
            article_id: "news/1".to_owned(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.held_comments[0].comment.as_ref().unwrap().id, first.id);
    let page = alice
        .list_held_comments(pb::ListHeldCommentsRequest {
            article_id: "news/1".to_owned(),
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.held_comments[0].comment.as_ref().unwrap().id, third.id);
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn approving_a_held_comment_publishes_it_to_lists_and_live_subscribers() {
    let mut app = spawn_app().await;
    let before = submit_approved(&mut app.client, "news/1", "Earlier").await;
    let held = submit_held(&mut app, "news/1", "c1").await;
    let mut live = watch(&app, "news/1", "").await;
    let mut alice = app.alice().await;

    let approved = moderate(&mut alice, &held.id, pb::Action::Approve)
        .await
        .unwrap();
    assert_eq!(approved.state(), pb::CommentState::Published);
    assert!(approved.id > held.id, "joins the sequence at approval time");
    assert_eq!(approved.text, held.text);

    match next_event(&mut live).await {
        Event::Comment(comment) => assert_eq!(comment, approved),
        other => panic!("{other:?}"),
    }
    let listed = list_all(&mut app.client, "news/1").await;
    assert_eq!(listed, [before.clone(), approved.clone()]);
    // The held id leads to the published comment.
    let fetched = get_comment(&mut app.client, &held.id).await;
    assert_eq!(fetched, approved);
    // A cursor taken before the approval replays it.
    let mut resumed = watch(&app, "news/1", &before.id).await;
    match next_event(&mut resumed).await {
        Event::Comment(comment) => assert_eq!(comment.id, approved.id),
        other => panic!("{other:?}"),
    }
    // Not twice, and not on unknown ids.
    let status = moderate(&mut alice, &held.id, pb::Action::Approve)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = moderate(&mut alice, "00000000000fffff", pb::Action::Approve)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = moderate(&mut alice, &held.id, pb::Action::Unspecified)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn rejecting_a_held_comment_drops_it_and_wrong_states_are_refused() {
    let mut app = spawn_app().await;
    let held = submit_held(&mut app, "news/1", "c1").await;
    let published = submit_approved(&mut app.client, "news/1", "Fine").await;
    let mut alice = app.alice().await;

    // Published comments cannot be approved or rejected; held ones cannot be removed.
    for (id, action) in [
        (&published.id, pb::Action::Approve),
        (&published.id, pb::Action::Reject),
        (&held.id, pb::Action::Remove),
    ] {
        let status = moderate(&mut alice, id, action).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{action:?}");
    }
    moderate(&mut alice, &held.id, pb::Action::Reject)
        .await
        .unwrap();
    let status = moderate(&mut alice, &held.id, pb::Action::Reject)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let queue = held_queue(&mut alice).await;
    assert!(queue.held_comments.is_empty());
    let status = get_comment_error(&mut app.client, &held.id).await;
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn removing_a_comment_takes_it_down_everywhere_and_tells_subscribers() {
    let mut app = spawn_app().await;
    let first = submit_approved(&mut app.client, "news/1", "First").await;
    let doomed = submit_approved(&mut app.client, "news/1", "Regrettable").await;
    let mut live = watch(&app, "news/1", "").await;
    let mut alice = app.alice().await;

    moderate(&mut alice, &doomed.id, pb::Action::Remove)
        .await
        .unwrap();
    let cursor = match next_event(&mut live).await {
        Event::CommentRemoved(removed) => {
            assert_eq!(removed.comment_id, doomed.id);
            assert!(removed.cursor > doomed.id);
            removed.cursor
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        list_all(&mut app.client, "news/1").await,
        std::slice::from_ref(&first)
    );
    let status = get_comment_error(&mut app.client, &doomed.id).await;
    assert_eq!(status.code(), Code::NotFound);
    let status = moderate(&mut alice, &doomed.id, pb::Action::Remove)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A page that saw the removed comment resumes and learns of its removal;
    // the redacted comment itself is not replayed.
    let mut resumed = watch(&app, "news/1", &doomed.id).await;
    match next_event(&mut resumed).await {
        Event::CommentRemoved(removed) => assert_eq!(removed.comment_id, doomed.id),
        other => panic!("{other:?}"),
    }
    let mut from_start = watch(&app, "news/1", "0000000000000000").await;
    match next_event(&mut from_start).await {
        Event::Comment(comment) => assert_eq!(comment.id, first.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        next_event(&mut from_start).await,
        Event::CommentRemoved(_)
    ));
    // Resuming after the removal's cursor continues live without repeats.
    let mut after_removal = watch(&app, "news/1", &cursor).await;
    let next = submit_approved(&mut app.client, "news/1", "Later").await;
    match next_event(&mut after_removal).await {
        Event::Comment(comment) => assert_eq!(comment.id, next.id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_closed_article_refuses_submissions_until_reopened() {
    let (mut app, mut alice) = spawn_with_news_1(|s| s.comments_closed = true).await;
    let status = submit_error(&mut app.client, submission("news/1", "Too late?", "c1")).await;
    assert_eq!(status.code(), Code::FailedPrecondition);
    let settings = article_settings(&mut alice, "news/1").await;
    assert!(settings.comments_closed);
    update_article(&mut alice, "news/1", pb::ArticleSettings::default()).await;
    let audit = audit_events(&mut alice, |r| r.article_id = "news/1".to_owned()).await;
    let updates = audit
        .iter()
        .filter(|e| e.action == "article_updated" && e.actor == "alice");
    assert_eq!(updates.count(), 2);
    submit_approved(&mut app.client, "news/1", "Open again").await;
    // Other articles were never affected, and an unknown article has defaults.
    let settings = article_settings(&mut alice, "news/never-seen").await;
    assert!(!settings.comments_closed);
}

#[tokio::test]
async fn an_auto_close_time_in_the_past_closes_the_article() {
    let past = SystemTime::now() - Duration::from_secs(60);
    let seconds = past.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let close_at = prost_types::Timestamp { seconds, nanos: 0 };
    let (mut app, _alice) = spawn_with_news_1(|s| s.auto_close_time = Some(close_at)).await;
    let status = submit_error(&mut app.client, submission("news/1", "Hello", "c1")).await;
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn pre_moderation_holds_every_comment_with_a_policy_reason() {
    let pre = pb::ModerationMode::Pre as i32;
    let (mut app, _alice) = spawn_with_news_1(|s| s.moderation_mode = pre).await;
    let text = "A perfectly clean comment";
    let verdict = verdict_of(&mut app.client, "news/1", text, "c1").await;
    assert_eq!(verdict.decision(), pb::Decision::Held);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.filter() == pb::Filter::Policy && r.code == "policy.pre_moderation")
    );
    assert!(list_all(&mut app.client, "news/1").await.is_empty());
}

#[tokio::test]
async fn newcomers_are_held_until_a_moderator_approves_one_of_their_comments() {
    let (mut app, mut alice) = spawn_with_news_1(|s| s.newcomer_approvals_required = 1).await;
    let text = "Hello, first time here";
    let first = submit_response(&mut app.client, "news/1", text, "newbie").await;
    assert_eq!(first.verdict.unwrap().decision(), pb::Decision::Held);
    moderate(&mut alice, &first.comment.unwrap().id, pb::Action::Approve)
        .await
        .unwrap();
    let second = verdict_of(&mut app.client, "news/1", "Glad to be here", "newbie").await;
    assert_eq!(second.decision(), pb::Decision::Approved);
}

#[tokio::test]
async fn term_lists_take_effect_on_the_next_submission() {
    let mut app = spawn_app().await;
    let mut alice = app.alice().await;
    // A real place name that the profanity filter rejects.
    let visit = "We visited Shitterton in Dorset";
    let verdict = verdict_of(&mut app.client, "news/1", visit, "c1").await;
    assert_ne!(verdict.decision(), pb::Decision::Approved);

    add_terms(&mut alice, &["Shitterton"], pb::TermEffect::Allow)
        .await
        .unwrap();
    add_terms(&mut alice, &["Miracle  Pills"], pb::TermEffect::Reject)
        .await
        .unwrap();
    add_terms(&mut alice, &["crypto"], pb::TermEffect::Hold)
        .await
        .unwrap();

    let verdict = verdict_of(&mut app.client, "news/1", visit, "c2").await;
    assert_eq!(verdict.decision(), pb::Decision::Approved, "{verdict:?}");
    assert!(verdict.reasons.iter().any(|r| r.code == "terms.allowed"));
    let pills_text = "Try these miracle pills today";
    let pills = verdict_of(&mut app.client, "news/1", pills_text, "c3").await;
    assert_eq!(pills.decision(), pb::Decision::Rejected);
    assert!(
        pills
            .reasons
            .iter()
            .any(|r| r.filter() == pb::Filter::Terms && r.message.contains("miracle pills"))
    );
    let crypto = verdict_of(&mut app.client, "news/1", "What about Crypto?", "c4").await;
    assert_eq!(crypto.decision(), pb::Decision::Held);

    let terms = alice
        .list_terms(pb::ListTermsRequest {})
        .await
        .unwrap()
        .into_inner()
        .terms;
    let texts: Vec<_> = terms.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["crypto", "miracle pills", "shitterton"]);
    assert!(terms.iter().all(|t| t.added_by == "alice"));

    let removed = alice
        .remove_terms(pb::RemoveTermsRequest {
            terms: vec!["miracle pills".to_owned(), "absent".to_owned()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed_count, 1);
    let pills = verdict_of(&mut app.client, "news/1", pills_text, "c5").await;
    assert_eq!(pills.decision(), pb::Decision::Approved);
    let audit = audit_events(&mut alice, |_| {}).await;
    let term_changes: Vec<_> = audit
        .iter()
        .filter(|e| e.action.starts_with("terms_"))
        .map(|e| (e.action.as_str(), e.note.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        term_changes,
        [
            ("terms_added", "shitterton", "alice"),
            ("terms_added", "miracle pills", "alice"),
            ("terms_added", "crypto", "alice"),
            ("terms_removed", "absent, miracle pills", "alice"),
        ]
    );
    let status = add_terms(&mut alice, &["  "], pb::TermEffect::Hold)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn term_lists_survive_a_restart() {
    let app = spawn_app().await;
    let mut alice = app.alice().await;
    add_terms(&mut alice, &["bad phrase"], pb::TermEffect::Reject)
        .await
        .unwrap();
    let data_dir = app.data_dir.clone();
    let keep = app.stop().await;
    let mut app = spawn_app_in(&data_dir, |_| {}).await;
    let verdict = verdict_of(&mut app.client, "news/1", "this is a bad phrase", "c1").await;
    assert_eq!(verdict.decision(), pb::Decision::Rejected);
    app.stop().await;
    drop(keep);
}

#[tokio::test]
async fn a_banned_client_is_rejected_with_a_reason_and_can_be_unbanned() {
    let mut app = spawn_app().await;
    let mut alice = app.alice().await;
    let kept = submit_approved(&mut app.client, "news/1", "From someone else").await;
    let mut troll_comments = Vec::new();
    for (i, article) in ["news/1", "news/2"].into_iter().enumerate() {
        let text = format!("Second post {i} from this reader");
        let response = submit_response(&mut app.client, article, &text, "troll").await;
        let comment = response.comment.unwrap();
        troll_comments.push(comment.id);
    }
    let mut live = watch(&app, "news/1", "").await;

    let ban = alice
        .ban_client(pb::BanClientRequest {
            client_id: "troll".to_owned(),
            reason: "harassment".to_owned(),
            expire_time: None,
            remove_comments: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut removed = ban.removed_comment_ids.clone();
    removed.sort();
    assert_eq!(removed, troll_comments);
    assert_eq!(ban.ban.unwrap().created_by, "alice");
    match next_event(&mut live).await {
        Event::CommentRemoved(removal) => assert_eq!(removal.comment_id, troll_comments[0]),
        other => panic!("{other:?}"),
    }
    assert_eq!(list_all(&mut app.client, "news/1").await, [kept]);
    assert!(list_all(&mut app.client, "news/2").await.is_empty());

    let verdict = verdict_of(&mut app.client, "news/1", "I am back", "troll").await;
    assert_eq!(verdict.decision(), pb::Decision::Rejected);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.filter() == pb::Filter::Ban)
    );

    let bans = alice
        .list_bans(pb::ListBansRequest {})
        .await
        .unwrap()
        .into_inner()
        .bans;
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].reason, "harassment");
    unban(&mut alice, "troll").await.unwrap();
    let verdict = verdict_of(&mut app.client, "news/1", "Sorry, behaving now", "troll").await;
    assert_eq!(verdict.decision(), pb::Decision::Approved);
    let status = unban(&mut alice, "troll").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_ban_expiry_must_be_in_the_future_and_an_expired_ban_no_longer_applies() {
    let mut app = spawn_app().await;
    let mut alice = app.alice().await;
    let status = alice
        .ban_client(pb::BanClientRequest {
            client_id: "c1".to_owned(),
            reason: String::new(),
            expire_time: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            remove_comments: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let soon = SystemTime::now() + Duration::from_secs(3);
    let seconds = soon.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    alice
        .ban_client(pb::BanClientRequest {
            client_id: "c1".to_owned(),
            reason: "cool off".to_owned(),
            expire_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            remove_comments: false,
        })
        .await
        .unwrap();
    let verdict = verdict_of(&mut app.client, "news/1", "Now?", "c1").await;
    assert_eq!(verdict.decision(), pb::Decision::Rejected);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let verdict = verdict_of(&mut app.client, "news/1", "And now?", "c1").await;
    assert_eq!(verdict.decision(), pb::Decision::Approved);
}

#[tokio::test]
async fn the_audit_log_records_decisions_and_actions_with_their_actors() {
    let mut app = spawn_app().await;
    let mut alice = app.alice().await;
    let mut bob = app.moderation(Some(BOB_TOKEN)).await;
    let held = submit_held(&mut app, "news/1", "c1").await;
    let text = "fuck you, go kill yourself";
    let rejected = submit_response(&mut app.client, "news/1", text, "c2").await;
    assert!(rejected.comment.is_none());
    let approved = moderate(&mut alice, &held.id, pb::Action::Approve)
        .await
        .unwrap();
    moderate(&mut bob, &approved.id, pb::Action::Remove)
        .await
        .unwrap();
    bob.ban_client(pb::BanClientRequest {
        client_id: "c2".to_owned(),
        reason: "abuse".to_owned(),
        ..Default::default()
    })
    .await
    .unwrap();
    submit_approved(&mut app.client, "news/2", "Elsewhere").await;

    let article_events = audit_events(&mut alice, |r| r.article_id = "news/1".to_owned()).await;
    let summary: Vec<_> = article_events
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("filter", "screened"),
            ("filter", "screened"),
            ("alice", "approved"),
            ("bob", "removed")
        ]
    );
    let screened = &article_events[1];
    assert_eq!(screened.decision(), pb::Decision::Rejected);
    assert!(!screened.reasons.is_empty());
    assert_eq!(screened.client_id, "c2");
    assert_eq!(article_events[2].note, "checked");

    let comment_events = audit_events(&mut alice, |r| r.comment_id = held.id.clone()).await;
    let actions: Vec<_> = comment_events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["screened", "approved"]);

    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let actions: Vec<_> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "screened",
            "screened",
            "approved",
            "removed",
            "client_banned",
            "screened"
        ]
    );
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));
}

/// Two moderators acting on one held comment at the same moment: exactly
/// one action wins (a conditional append), the others get
/// FAILED_PRECONDITION, and the comment is published once.
#[tokio::test]
async fn concurrent_moderators_cannot_both_act_on_one_comment() {
    let mut app = spawn_app().await;
    for round in 0..5 {
        let held = submit_held(&mut app, "news/race", &format!("c{round}")).await;
        let mut moderators = Vec::new();
        for n in 0..8 {
            let token = if n % 2 == 0 { ALICE_TOKEN } else { BOB_TOKEN };
            moderators.push(app.moderation(Some(token)).await);
        }
        let racers: Vec<_> = moderators
            .into_iter()
            .enumerate()
            .map(|(n, mut moderation)| {
                let id = held.id.clone();
                tokio::spawn(async move {
                    let action = if n < 4 {
                        pb::Action::Approve
                    } else {
                        pb::Action::Reject
                    };
                    moderate(&mut moderation, &id, action).await
                })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => won += 1,
                Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}: one action wins");
    }
    let published = list_all(&mut app.client, "news/race").await;
    let ids: std::collections::BTreeSet<_> = published.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), published.len(), "no comment published twice");
    assert!(published.len() <= 5);
}

/// A removed comment's and a rejected held comment's author and text are
/// erased from the log itself, not only from the listings; the audit stays.
#[tokio::test]
async fn removed_and_rejected_comments_are_erased_from_the_log() {
    let mut app = spawn_app().await;
    let published = submit_approved(&mut app.client, "news/1", "A comment to take down").await;
    let held = submit_held(&mut app, "news/1", "c1").await;
    let mut alice = app.alice().await;
    moderate(&mut alice, &published.id, pb::Action::Remove)
        .await
        .unwrap();
    moderate(&mut alice, &held.id, pb::Action::Reject)
        .await
        .unwrap();
    let data_dir = app.data_dir.clone();
    let _keep = app.stop().await;
    crate::helpers::wait_until_released(&data_dir);

    let store = commentd::store::Store::open(
        &data_dir,
        &commentd::store::StoreOptions::default(),
        Box::new(|_, _| {}),
    )
    .unwrap();
    for id in [&published.id, &held.id] {
        let position = u64::from_str_radix(id, 16).unwrap();
        let submitted = store
            .submission(position)
            .unwrap()
            .expect("the audit stays");
        assert_eq!(submitted.text, None, "{id}");
        assert_eq!(submitted.author_name, None, "{id}");
    }
    store.close().await.unwrap();
}
