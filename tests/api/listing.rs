//! Listing approved comments page by page.

use commentd::api::pb;

use crate::helpers::{spawn_app, spawn_app_with, submit_approved, without_profanity_filter};

async fn page(
    client: &mut crate::helpers::Client,
    page_size: i32,
    page_token: String,
) -> pb::ListCommentsResponse {
    client
        .list_comments(pb::ListCommentsRequest {
            article_id: "news/big".to_owned(),
            page_size,
            page_token,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn five_hundred_comments_page_in_order_without_gap_or_duplicate() {
    let mut app = spawn_app_with(without_profanity_filter).await;
    let mut submitted = Vec::new();
    for i in 0..500 {
        let comment =
            submit_approved(&mut app.client, "news/big", &format!("Comment number {i}")).await;
        submitted.push(comment.id);
        if i % 50 == 0 {
            // Another article in between must not leak into the list.
            submit_approved(&mut app.client, "news/other", &format!("Elsewhere {i}")).await;
        }
    }

    // Default page size is 50.
    let first = page(&mut app.client, 0, String::new()).await;
    assert_eq!(first.comments.len(), 50);
    assert!(!first.next_page_token.is_empty());

    // Page sizes above 200 are capped at 200.
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let response = page(&mut app.client, 1000, token).await;
        assert!(response.comments.len() <= 200);
        pages += 1;
        listed.extend(response.comments.into_iter().map(|c| c.id));
        if response.next_page_token.is_empty() {
            break;
        }
        token = response.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(
        listed, submitted,
        "oldest first, every comment exactly once"
    );

    // An odd page size walks the same sequence.
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let response = page(&mut app.client, 7, token).await;
        listed.extend(response.comments.into_iter().map(|c| c.id));
        if response.next_page_token.is_empty() {
            break;
        }
        token = response.next_page_token;
    }
    assert_eq!(listed, submitted);
}

#[tokio::test]
async fn an_exactly_full_last_page_has_no_next_token() {
    let mut app = spawn_app().await;
    for i in 0..4 {
        submit_approved(&mut app.client, "news/big", &format!("Comment {i}")).await;
    }
    let first = page(&mut app.client, 2, String::new()).await;
    assert_eq!(first.comments.len(), 2);
    let second = page(&mut app.client, 2, first.next_page_token).await;
    assert_eq!(second.comments.len(), 2);
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn an_article_without_comments_lists_empty() {
    let mut app = spawn_app().await;
    let response = page(&mut app.client, 0, String::new()).await;
    assert!(response.comments.is_empty());
    assert!(response.next_page_token.is_empty());
}
