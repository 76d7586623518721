//! Issue 12, defect 1 and 5: there was no cap on connections.

use std::time::{Duration, Instant};

use tokio::{io::AsyncReadExt, net::TcpStream};
use tonic::Code;

use crate::server::{Server, list_request};

#[tokio::test]
async fn a_connection_over_the_cap_is_closed_at_once_and_the_others_still_work() {
    let server = Server::start(&["--max-connections", "5"]);
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut client = server.client().await;
        client
            .list_comments(list_request("capped"))
            .await
            .expect("a connection within the cap is served");
        clients.push(client);
    }

    let mut sixth = TcpStream::connect(server.addr).await.expect("connects");
    let opened = Instant::now();
    let mut buffer = [0; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), sixth.read(&mut buffer))
        .await
        .expect("the sixth connection is closed at once");
    let took = opened.elapsed();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the sixth connection got data: {read:?}"
    );
    eprintln!("a sixth connection over --max-connections 5 was closed after {took:?} ({read:?})");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A gRPC client on a sixth connection fails. (What it reports depends
    // on the client and the timing: tonic says CANCELLED, "operation was
    // canceled", or UNKNOWN, "transport error" (connection reset); gRPC
    // C-core says UNAVAILABLE, "Socket closed".)
    let refused = Server::lazy_client(server.addr)
        .list_comments(list_request("capped"))
        .await
        .expect_err("a call on a sixth connection fails");
    eprintln!("a call on a sixth connection: {refused:?}");
    assert!(
        matches!(
            refused.code(),
            Code::Unavailable | Code::Cancelled | Code::Unknown
        ),
        "{refused:?}"
    );

    // The five are served.
    for client in &mut clients {
        client
            .list_comments(list_request("capped"))
            .await
            .expect("the first five connections still work");
    }
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server = Server::start(&["--max-connections-per-address", "3"]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = server.client().await;
        client
            .list_comments(list_request("per-address"))
            .await
            .expect("a connection within the per-address cap is served");
        clients.push(client);
    }
    let mut fourth = TcpStream::connect(server.addr).await.expect("connects");
    let mut buffer = [0; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), fourth.read(&mut buffer))
        .await
        .expect("the fourth connection from the address is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    drop(clients);
    // Once they close, the address may connect again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
        .client()
        .await
        .list_comments(list_request("per-address"))
        .await
        .expect("room again once the connections closed");
}
