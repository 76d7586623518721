//! Optional TLS, with a self-signed certificate made in the test.

use commentd::api::pb::comment_service_client::CommentServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::helpers::{spawn_app_with, submission};

#[tokio::test]
async fn the_server_speaks_tls_with_the_configured_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();

    let app = spawn_app_with({
        let (cert_path, key_path) = (cert_path.clone(), key_path.clone());
        move |config| config.tls = Some((cert_path, key_path))
    })
    .await;
    // spawn_app's own plaintext client cannot talk to a TLS server.
    let mut plaintext = app.client.clone();
    assert!(
        plaintext
            .submit_comment(submission("news/1", "hi", "c1"))
            .await
            .is_err()
    );

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(certified.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = CommentServiceClient::new(channel);
    let response = client
        .submit_comment(submission("news/1", "Over TLS", "c1"))
        .await
        .unwrap()
        .into_inner();
    assert!(response.comment.is_some());
}
