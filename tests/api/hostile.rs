//! What hostile or careless callers try (issue 12): rotating client ids,
//! forged proxy headers, forged page tokens and timestamps, invisible and
//! look-alike names. Process-level limits (memory, connections, idle and
//! half-open streams, file descriptors) are in `tests/hostile/`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use commentd::{api::pb, screening::rate_limit::RatePolicy};
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::helpers::{
    Client, spawn_app_with, submission, submit, submit_approved, submit_error,
    without_profanity_filter,
};

/// Submits `count` comments, each from a new client_id, and counts the
/// refusals by code.
async fn rotate_client_ids(
    client: &mut Client,
    count: usize,
    forwarded_for: Option<&str>,
) -> usize {
    let mut limited = 0;
    for n in 0..count {
        let mut request = Request::new(submission(
            "news/rotating",
            &format!("comment number {n}"),
            &format!("rotating-{n}"),
        ));
        if let Some(address) = forwarded_for {
            request
                .metadata_mut()
                .insert("x-forwarded-for", address.parse().unwrap());
        }
        match client.submit_comment(request).await {
            Ok(_) => {}
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(status.message().contains("from this address"), "{status:?}");
                assert!(status.get_details_retry_info().is_some(), "{status:?}");
                limited += 1;
            }
            Err(status) => panic!("unexpected {status:?}"),
        }
    }
    limited
}

#[tokio::test]
async fn rotating_client_ids_do_not_escape_the_limit_per_address() {
    let mut app = spawn_app_with(|config| {
        without_profanity_filter(config);
        config.rate = RatePolicy::default();
        config.peer_rate = RatePolicy::per_second(5, 10);
    })
    .await;
    let limited = rotate_client_ids(&mut app.client, 40, None).await;
    // A burst of 10, plus what 5/s regains while the 40 calls run.
    assert!(limited >= 20, "only {limited} of 40 refused");
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    // Not trusted: the header is ignored, so forging it does not help.
    let mut app = spawn_app_with(|config| {
        without_profanity_filter(config);
        config.peer_rate = RatePolicy::per_second(1, 5);
    })
    .await;
    let mut forged = 0;
    for n in 0..10 {
        let mut request = Request::new(submission(
            "news/1",
            &format!("forged {n}"),
            &format!("c{n}"),
        ));
        request
            .metadata_mut()
            .insert("x-forwarded-for", format!("203.0.113.{n}").parse().unwrap());
        if app.client.submit_comment(request).await.is_err() {
            forged += 1;
        }
    }
    assert!(
        forged >= 4,
        "{forged} refused: the forged header was believed"
    );

    // From a trusted proxy, each forwarded reader has a limit of its own.
    let mut app = spawn_app_with(|config| {
        without_profanity_filter(config);
        config.peer_rate = RatePolicy::per_second(1, 5);
        config.trusted_proxies = vec!["127.0.0.1".to_owned()];
    })
    .await;
    for reader in 0..10 {
        let address = format!("198.51.100.{reader}");
        let limited = rotate_client_ids(&mut app.client, 3, Some(&address)).await;
        assert_eq!(limited, 0, "reader {address} was limited by the others");
    }
    let limited = rotate_client_ids(&mut app.client, 12, Some("198.51.100.200")).await;
    assert!(
        limited >= 5,
        "one forwarded reader made 12 calls, {limited} refused"
    );
}

#[tokio::test]
async fn truncated_forged_and_future_page_tokens_are_refused() {
    let mut app = spawn_app_with(without_profanity_filter).await;
    for n in 0..5 {
        submit_approved(&mut app.client, "news/paged", &format!("comment {n}")).await;
    }
    let first = app
        .client
        .list_comments(pb::ListCommentsRequest {
            article_id: "news/paged".to_owned(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let token = first.next_page_token;
    assert!(!token.is_empty());
    let forged = [
        token[..token.len() - 1].to_owned(),
        token[..token.len() / 2].to_owned(),
        URL_SAFE_NO_PAD.encode("v1\ncomments:news/paged\nffffffffffffffff"),
        URL_SAFE_NO_PAD.encode("v1\ncomments:news/paged\n00000000000fffff"),
        URL_SAFE_NO_PAD.encode("v1\ncomments:news/paged\n2"),
    ];
    for page_token in forged {
        let status = app
            .client
            .list_comments(pb::ListCommentsRequest {
                article_id: "news/paged".to_owned(),
                page_size: 2,
                page_token: page_token.clone(),
            })
            .await
            .expect_err(&format!("{page_token:?} is refused"));
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{page_token:?}: {status:?}"
        );
        let fields = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(fields[0].field, "page_token");
    }
}

#[tokio::test]
async fn timestamps_beyond_the_protobuf_range_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    let mut moderation = app.alice().await;
    for seconds in [1_i64 << 62, 253_402_300_800] {
        let status = moderation
            .ban_client(pb::BanClientRequest {
                client_id: "troll".to_owned(),
                reason: String::new(),
                expire_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                remove_comments: false,
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let fields = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(fields[0].field, "expire_time");
    }
    // The last second of year 9999 is a timestamp.
    moderation
        .ban_client(pb::BanClientRequest {
            client_id: "troll".to_owned(),
            reason: String::new(),
            expire_time: Some(prost_types::Timestamp {
                seconds: 253_402_300_799,
                nanos: 0,
            }),
            remove_comments: false,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn invisible_look_alike_and_reserved_names_and_blank_texts_are_refused() {
    let mut app = spawn_app_with(|_| {}).await;
    let names = [
        "\u{200b}",
        "\u{3164}",
        "\u{202e}ninA",
        "Ana\u{2028}Admin",
        "\u{410}dmin",
        "Moderator",
        "ADMIN",
    ];
    for name in names {
        let mut request = submission("news/1", "A perfectly ordinary remark.", "c1");
        request.author_name = name.to_owned();
        let status = submit_error(&mut app.client, request).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}: {status:?}");
        let fields = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(fields[0].field, "author_name", "{name:?}");
    }
    for text in ["\u{200b}", "\u{feff}", " \u{2060}\u{200b} "] {
        let status = submit_error(&mut app.client, submission("news/1", text, "c1")).await;
        let fields = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(fields[0].field, "text", "{text:?}");
    }
    // Ordinary names in any one script still pass.
    for name in ["Jürgen", "Андрей", "山田 たろう", "Zoë 🙂"] {
        let mut request = submission("news/1", &format!("Hello from {name}."), "c1");
        request.author_name = name.to_owned();
        let response = submit(&mut app.client, request).await;
        assert!(response.verdict.is_some(), "{name:?}");
    }
}
