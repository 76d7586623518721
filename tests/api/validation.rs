//! Bad input: every refusal names the field, and nothing is stored.

use commentd::api::pb;
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
};
use tonic_types::StatusExt;

use crate::helpers::{
    get_comment_error, list_all, spawn_app, spawn_app_with, submission, submit_error,
    submit_response, subscribe_error,
};

fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut fields: Vec<String> = status
        .get_details_bad_request()
        .expect("a BadRequest detail")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    fields
}

async fn submit_status(request: pb::SubmitCommentRequest) -> Status {
    let mut app = spawn_app().await;
    let status = submit_error(&mut app.client, request).await;
    assert!(list_all(&mut app.client, "news/1").await.is_empty());
    status
}

#[tokio::test]
async fn every_bad_field_is_named_at_once() {
    let status = submit_status(pb::SubmitCommentRequest {
        article_id: "has space".to_owned(),
        author_name: "   ".to_owned(),
        text: String::new(),
        parent_id: "not-an-id".to_owned(),
        client_id: String::new(),
        idempotency_key: "k".repeat(129),
    })
    .await;
    assert_eq!(
        violated_fields(&status),
        [
            "article_id",
            "author_name",
            "client_id",
            "idempotency_key",
            "parent_id",
            "text"
        ]
    );
}

#[tokio::test]
async fn an_article_id_over_128_characters_is_refused() {
    let status = submit_status(submission(&"a".repeat(129), "hello", "c1")).await;
    assert_eq!(violated_fields(&status), ["article_id"]);
}

#[tokio::test]
async fn an_author_name_over_64_characters_is_refused() {
    let mut request = submission("news/1", "hello", "c1");
    request.author_name = "n".repeat(65);
    assert_eq!(
        violated_fields(&submit_status(request).await),
        ["author_name"]
    );
}

#[tokio::test]
async fn a_text_over_the_limit_is_refused() {
    let status = submit_status(submission("news/1", &"a".repeat(5001), "c1")).await;
    assert_eq!(violated_fields(&status), ["text"]);
}

#[tokio::test]
async fn the_text_limit_is_configurable() {
    let mut app = spawn_app_with(|config| config.max_text_chars = 10).await;
    let status = submit_error(&mut app.client, submission("news/1", "eleven char", "c1")).await;
    assert_eq!(violated_fields(&status), ["text"]);
}

#[tokio::test]
async fn control_characters_are_refused() {
    let status = submit_status(submission("news/1", "bell \u{7} here", "c1")).await;
    assert_eq!(violated_fields(&status), ["text"]);
}

#[tokio::test]
async fn text_is_stored_trimmed_and_normalised() {
    let mut app = spawn_app().await;
    let text = "  Cafe\u{301} au lait\r\n ";
    let response = submit_response(&mut app.client, "news/1", text, "c1").await;
    let comment = response.comment.unwrap();
    assert_eq!(comment.text, "Caf\u{e9} au lait");
}

#[tokio::test]
async fn malformed_ids_and_page_parameters_are_invalid_arguments() {
    let mut app = spawn_app().await;
    let status = get_comment_error(&mut app.client, "42").await;
    assert_eq!(violated_fields(&status), ["comment_id"]);
    let status = app
        .client
        .list_comments(pb::ListCommentsRequest {
            article_id: "news/1".to_owned(),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_size"]);
    let status = app
        .client
        .list_comments(pb::ListCommentsRequest {
            article_id: "news/1".to_owned(),
            page_size: 10,
            page_token: "bogus".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);
    let status = subscribe_error(&mut app.client, "", "zz").await;
    assert_eq!(violated_fields(&status), ["after_comment_id", "article_id"]);
}

#[tokio::test]
async fn an_unknown_comment_is_not_found() {
    let mut app = spawn_app().await;
    let status = get_comment_error(&mut app.client, "00000000000000ff").await;
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    let mut app = spawn_app_with(|config| config.max_message_bytes = 16 * 1024).await;
    let request = submission("news/1", &"a".repeat(20_000), "c1");
    let status = submit_error(&mut app.client, request).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}

/// Sends raw bytes as the request message.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        Self
    }
    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let remaining = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, remaining).to_vec()))
    }
}

async fn submit_raw(addr: std::net::SocketAddr, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(crate::helpers::channel(addr).await);
    grpc.ready().await.unwrap();
    grpc.unary(
        Request::new(body),
        PathAndQuery::from_static("/comments.v1.CommentService/SubmitComment"),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn malformed_protobuf_and_invalid_utf8_are_invalid_arguments() {
    let mut app = spawn_app().await;
    // Field 1 (article_id) with bytes that are not UTF-8.
    let bad_utf8 = vec![0x0a, 0x02, 0xff, 0xfe];
    // A length prefix running past the end of the message.
    let truncated = vec![0x0a, 0x20, b'a'];
    for body in [bad_utf8, truncated] {
        let status = submit_raw(app.addr, body).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    assert!(list_all(&mut app.client, "news/1").await.is_empty());
}
