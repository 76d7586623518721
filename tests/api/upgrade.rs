//! Upgrades: a data dir written by the previous format (format 1, written
//! by commit ae402c0's store; `tests/fixtures/store-v1/`) opens with this
//! version and serves the same comments, queues, settings, terms, bans and
//! audit; a newer format is refused.

use std::{path::Path, time::Duration};

use commentd::api::pb;
use serde_json::Value;
use tonic::Code;

use crate::helpers::spawn_app_in;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// An audit entry's fields, ids aside (a migration renumbers audit ids).
fn expected_audit(entry: &Value) -> Vec<String> {
    let action = text(&entry["action"]);
    // "TermsAdded" -> "terms_added", as the API names actions.
    let mut snake = String::new();
    for (i, c) in action.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    let codes: Vec<String> = entry["reason_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    vec![
        snake,
        text(&entry["actor"]),
        text(&entry["article_id"]),
        text(&entry["comment_id"]),
        text(&entry["client_id"]),
        text(&entry["note"]),
        codes.join(","),
    ]
}

fn audit_fields(event: &pb::AuditEvent) -> Vec<String> {
    vec![
        event.action.clone(),
        event.actor.clone(),
        event.article_id.clone(),
        event.comment_id.clone(),
        event.client_id.clone(),
        event.note.clone(),
        event
            .reasons
            .iter()
            .map(|r| r.code.clone())
            .collect::<Vec<_>>()
            .join(","),
    ]
}

#[tokio::test]
async fn a_format_1_data_dir_is_migrated_and_serves_the_same_data() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/expected.json")).unwrap())
            .unwrap();
    let temp = tempfile::TempDir::new().unwrap();
    let data = temp.path().join("data");
    copy_dir(&Path::new(FIXTURE).join("data"), &data);
    // The fixture's idempotency records are older than a day.
    let app = spawn_app_in(&data, |config| {
        config.idempotency_ttl = Duration::from_secs(100 * 365 * 24 * 3600);
    })
    .await;
    let mut client = app.client.clone();
    let mut alice = app.alice().await;

    for (article, article_expected) in expected["articles"].as_object().unwrap() {
        let listed = client
            .list_comments(pb::ListCommentsRequest {
                article_id: article.clone(),
                page_size: 100,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .comments;
        let listed: Vec<[String; 4]> = listed
            .iter()
            .map(|c| {
                [
                    c.id.clone(),
                    c.author_name.clone(),
                    c.text.clone(),
                    c.parent_id.clone(),
                ]
            })
            .collect();
        let published: Vec<[String; 4]> = article_expected["published"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                [
                    text(&c["id"]),
                    text(&c["author_name"]),
                    text(&c["text"]),
                    text(&c["parent_id"]),
                ]
            })
            .collect();
        assert_eq!(listed, published, "{article}: published comments");

        let held: Vec<String> = alice
            .list_held_comments(pb::ListHeldCommentsRequest {
                article_id: article.clone(),
                page_size: 100,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .held_comments
            .iter()
            .map(|h| h.comment.as_ref().unwrap().id.clone())
            .collect();
        let held_expected: Vec<String> = article_expected["held"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| text(&h["id"]))
            .collect();
        assert_eq!(held, held_expected, "{article}: held comments");

        let settings = alice
            .get_article(pb::GetArticleRequest {
                article_id: article.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .settings
            .unwrap();
        let settings_expected = &article_expected["settings"];
        assert_eq!(
            u64::from(settings.newcomer_approvals_required),
            settings_expected["newcomer_approvals_required"]
                .as_u64()
                .unwrap(),
            "{article}"
        );
        assert_eq!(
            settings.auto_close_time.map(|t| t.seconds),
            settings_expected["auto_close_at_unix"].as_i64(),
            "{article}"
        );
    }

    for (id, lookup) in expected["lookup"].as_object().unwrap() {
        let got = client
            .get_comment(pb::GetCommentRequest {
                comment_id: id.clone(),
            })
            .await;
        match text(&lookup["result"]).as_str() {
            "published" => assert_eq!(
                got.unwrap().into_inner().comment.unwrap().id,
                text(&lookup["resolves_to"]),
                "comment {id}"
            ),
            _ => assert_eq!(got.unwrap_err().code(), Code::NotFound, "comment {id}"),
        }
    }

    let audit: Vec<Vec<String>> = alice
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_events
        .iter()
        .map(audit_fields)
        .collect();
    let audit_expected: Vec<Vec<String>> = expected["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(expected_audit)
        .collect();
    assert_eq!(audit, audit_expected, "the audit, in order");

    let terms: Vec<String> = alice
        .list_terms(pb::ListTermsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .terms
        .iter()
        .map(|t| t.text.clone())
        .collect();
    let terms_expected: Vec<String> = expected["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| text(&t["text"]))
        .collect();
    assert_eq!(terms, terms_expected);
    let bans: Vec<(String, String)> = alice
        .list_bans(pb::ListBansRequest::default())
        .await
        .unwrap()
        .into_inner()
        .bans
        .iter()
        .map(|b| (b.client_id.clone(), b.reason.clone()))
        .collect();
    let bans_expected: Vec<(String, String)> = expected["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (text(&b["client_id"]), text(&b["reason"])))
        .collect();
    assert_eq!(bans, bans_expected);

    // A retry with an idempotency key from before the upgrade is answered
    // from its record.
    let bob = &expected["articles"]["news-2026-budget"]["published"][1];
    let retried = client
        .submit_comment(pb::SubmitCommentRequest {
            article_id: text(&bob["article_id"]),
            author_name: text(&bob["author_name"]),
            text: text(&bob["text"]),
            parent_id: text(&bob["parent_id"]),
            client_id: text(&bob["client_id"]),
            idempotency_key: "bob-retry-0001".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(retried.replayed);
    assert_eq!(retried.comment.unwrap().id, text(&bob["id"]));

    // New comments take ids after every old one.
    let new = client
        .submit_comment(pb::SubmitCommentRequest {
            article_id: "news-2026-budget".to_owned(),
            author_name: "Reader".to_owned(),
            text: "Thanks for the clear explanation of the annex.".to_owned(),
            client_id: "client-new".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let new_id = u64::from_str_radix(&new.comment.unwrap().id, 16).unwrap();
    assert!(new_id > expected["last_position"].as_u64().unwrap());
}

#[tokio::test]
async fn a_data_dir_of_a_newer_format_is_refused() {
    let temp = tempfile::TempDir::new().unwrap();
    {
        let db = sled::Config::new().path(temp.path()).open().unwrap();
        db.insert("format", &[9]).unwrap();
        db.flush().unwrap();
    }
    crate::helpers::wait_until_released(temp.path());
    let config = crate::helpers::test_config(temp.path());
    let error = commentd::Application::build(config)
        .await
        .err()
        .expect("a newer format is refused");
    let message = format!("{error:#}");
    assert!(message.contains("format 9"), "{message}");
    assert!(message.contains("newer commentd"), "{message}");
}

/// Everything a reader or moderator can read, as text.
async fn snapshot(app: &crate::helpers::TestApp) -> Vec<String> {
    let mut client = app.client.clone();
    let mut alice = app.alice().await;
    let mut seen = Vec::new();
    for article in ["news-2026-budget", "sport-final", "local-council"] {
        let comments = client
            .list_comments(pb::ListCommentsRequest {
                article_id: article.to_owned(),
                page_size: 100,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner());
        seen.push(format!("{comments:?}"));
        let audit = alice
            .list_audit_events(pb::ListAuditEventsRequest {
                article_id: article.to_owned(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner());
        seen.push(format!("{audit:?}"));
        let settings = alice
            .get_article(pb::GetArticleRequest {
                article_id: article.to_owned(),
            })
            .await
            .map(|r| r.into_inner());
        seen.push(format!("{settings:?}"));
    }
    for id in 1..=60u64 {
        let comment_id = format!("{id:016x}");
        let comment = client
            .get_comment(pb::GetCommentRequest {
                comment_id: comment_id.clone(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|status| status.code());
        seen.push(format!("{comment:?}"));
        let audit = alice
            .list_audit_events(pb::ListAuditEventsRequest {
                comment_id,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner());
        seen.push(format!("{audit:?}"));
    }
    let held = alice
        .list_held_comments(pb::ListHeldCommentsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner());
    seen.push(format!("{held:?}"));
    let audit = alice
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner());
    seen.push(format!("{audit:?}"));
    let terms = alice.list_terms(pb::ListTermsRequest::default()).await;
    seen.push(format!("{:?}", terms.map(|r| r.into_inner())));
    let bans = alice.list_bans(pb::ListBansRequest::default()).await;
    seen.push(format!("{:?}", bans.map(|r| r.into_inner())));
    seen
}

/// `commentd rebuild-views` deletes the views and derives them again from
/// the log: every listing, queue, lookup, setting and audit reads the same.
#[tokio::test]
async fn rebuilt_views_answer_exactly_as_before() {
    let temp = tempfile::TempDir::new().unwrap();
    let data = temp.path().join("data");
    copy_dir(&Path::new(FIXTURE).join("data"), &data);
    let app = spawn_app_in(&data, |_| {}).await;
    // Writes in the new format too: an approval, a removal, a ban that
    // removes a client's comments, a term.
    let mut alice = app.alice().await;
    for (id, action) in [
        ("0000000000000016", pb::Action::Approve),
        ("0000000000000004", pb::Action::Remove),
    ] {
        alice
            .moderate_comment(pb::ModerateCommentRequest {
                comment_id: id.to_owned(),
                action: action.into(),
                note: "rebuild test".to_owned(),
            })
            .await
            .unwrap();
    }
    alice
        .ban_client(pb::BanClientRequest {
            client_id: "client-frank".to_owned(),
            reason: "rebuild test".to_owned(),
            remove_comments: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut client = app.client.clone();
    crate::helpers::submit_approved(&mut client, "sport-final", "What a final that was.").await;
    let before = snapshot(&app).await;
    let _keep = app.stop().await;
    crate::helpers::wait_until_released(&data);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_commentd"))
        .args(["rebuild-views", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("views rebuilt from the log"),
        "{output:?}"
    );

    let app = spawn_app_in(&data, |_| {}).await;
    let after = snapshot(&app).await;
    assert_eq!(before.len(), after.len());
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(before, after);
    }
}
