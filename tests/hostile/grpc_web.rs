//! gRPC-web (HTTP/1.1) calls from a browser on an allowed origin, refused
//! by a limit: the answer must still be one the browser may read (CORS
//! headers) and its gRPC-web client understands (a gRPC-web content type),
//! or the page sees a network error instead of the status.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::server::{Server, subscribe_request};

const ORIGIN: &str = "https://news.example";

/// Sends one HTTP/1.1 gRPC-web request (its body possibly incomplete) and
/// returns the response's status line and headers (names lowercased).
async fn grpc_web_call(
    addr: SocketAddr,
    method: &str,
    content_length: usize,
    body: &[u8],
) -> (String, HashMap<String, String>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    let head = format!(
        "POST /comments.v1.CommentService/{method} HTTP/1.1\r\nHost: commentd\r\n\
         Origin: {ORIGIN}\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         Content-Length: {content_length}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut response = Vec::new();
    let mut buffer = [0; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !response.windows(4).any(|window| window == b"\r\n\r\n") {
            let read = tcp.read(&mut buffer).await.expect("reads");
            assert!(read > 0, "closed without an answer: {response:?}");
            response.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("an answer");
    let text = String::from_utf8_lossy(&response);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers)
}

fn assert_readable_by_the_browser(headers: &HashMap<String, String>, grpc_status: &str) {
    assert_eq!(
        headers.get("grpc-status").map(String::as_str),
        Some(grpc_status),
        "{headers:?}"
    );
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some(ORIGIN),
        "no CORS header: the browser hides this answer from the page: {headers:?}"
    );
    assert!(
        headers
            .get("content-type")
            .is_some_and(|value| value.starts_with("application/grpc-web")),
        "not a gRPC-web answer: {headers:?}"
    );
}

#[tokio::test]
async fn a_grpc_web_call_that_times_out_gets_an_answer_the_browser_can_read() {
    let server = Server::start(&["--cors-allow-origin", ORIGIN, "--request-timeout-secs", "1"]);
    // A message prefix announcing 995 bytes, then 1 of them; the body
    // never finishes.
    let (status, headers) = grpc_web_call(
        server.addr,
        "SubmitComment",
        1_000,
        &[0, 0, 0, 3, 0xe3, b'x'],
    )
    .await;
    eprintln!("a gRPC-web call that timed out: {status} {headers:?}");
    assert_readable_by_the_browser(&headers, "1");
}

#[tokio::test]
async fn a_grpc_web_call_over_the_stream_cap_gets_an_answer_the_browser_can_read() {
    let server = Server::start(&["--cors-allow-origin", ORIGIN, "--max-streams", "1"]);
    let mut client = server.client().await;
    let open = client
        .subscribe_comments(subscribe_request("the-only-stream"))
        .await
        .expect("the one stream allowed opens");
    // GetComment { comment_id: "0000000000000001" }.
    let mut body = vec![0, 0, 0, 0, 18, 10, 16];
    body.extend_from_slice(b"0000000000000001");
    let (status, headers) = grpc_web_call(server.addr, "GetComment", body.len(), &body).await;
    eprintln!("a gRPC-web call over the stream cap: {status} {headers:?}");
    assert_readable_by_the_browser(&headers, "8");

    // Below the cap the same call is answered readably (NOT_FOUND).
    drop(open);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, headers) = grpc_web_call(server.addr, "GetComment", body.len(), &body).await;
        if headers.get("grpc-status").map(String::as_str) != Some("8") {
            assert_readable_by_the_browser(&headers, "5");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{headers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
