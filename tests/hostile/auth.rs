//! Issue 12, defect 9: failed moderator authentication left no trace and
//! tokens could be guessed at speed.

use std::time::Duration;

use commentd::api::pb::{self, moderation_service_client::ModerationServiceClient};
use tonic::{Code, Request, Status, metadata::MetadataValue};

use crate::server::Server;

const TOKEN: &str = "alice-real-token-0123456789abcdef";
const WRONG_TOKEN: &str = "wrong-token-123456789";

/// ListTerms with `authorization: Bearer <token>`.
async fn list_terms(server: &Server, token: &str) -> Result<(), Status> {
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut client = ModerationServiceClient::with_interceptor(
        server.channel().await,
        move |mut request: Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
            Ok(request)
        },
    );
    client.list_terms(pb::ListTermsRequest {}).await.map(drop)
}

#[tokio::test]
async fn failed_moderator_logins_are_logged_without_the_token_and_limited() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), format!("alice:{TOKEN}\n")).unwrap();
    let server = Server::start(&[
        "--moderator-tokens-file",
        tokens.path().to_str().unwrap(),
        "--auth-failures-per-minute",
        "3",
    ]);
    list_terms(&server, TOKEN)
        .await
        .expect("the real token is accepted");

    let mut codes = Vec::new();
    for _ in 0..5 {
        let status = list_terms(&server, WRONG_TOKEN)
            .await
            .expect_err("a wrong token is refused");
        codes.push(status.code());
    }
    eprintln!("5 calls with a wrong token, 3 failures a minute allowed: {codes:?}");
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::ResourceExhausted,
        ]
    );

    assert!(
        server
            .wait_for_log("moderator authentication failed", 3, Duration::from_secs(5))
            .await,
        "failed logins are not logged:\n{}",
        server.log()
    );
    let log = server.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("moderator authentication failed"))
        .collect();
    eprintln!("logged: {failures:#?}");
    for line in &failures {
        assert!(line.contains("127.0.0.1"), "no caller address: {line}");
    }
    assert!(
        !log.contains(WRONG_TOKEN),
        "the wrong token is logged:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the real token is logged:\n{log}");
}
