//! gRPC-web over HTTP/1.1 (what browsers speak), and CORS, with a plain
//! HTTP/1.1 client written against the wire format.

use commentd::api::pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{spawn_app, spawn_app_with};

struct HttpResponse {
    head: String,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
async fn http1(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    HttpResponse { head, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

/// Splits a gRPC-web body into (flag, payload) frames.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    out
}

fn grpc_web_body(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    body
}

#[tokio::test]
async fn a_browser_style_grpc_web_call_over_http1_works() {
    let app = spawn_app().await;
    let body = grpc_web_body(&pb::CheckCommentRequest {
        text: "fuck you, go kill yourself".to_owned(),
        author_name: String::new(),
    });
    let response = http1(
        app.addr,
        "POST",
        "/comments.v1.CommentService/CheckComment",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &body,
    )
    .await;
    assert!(
        response.head.starts_with("HTTP/1.1 200"),
        "{}",
        response.head
    );
    let frames = frames(&response.body);
    let (flag, payload) = &frames[0];
    assert_eq!(*flag, 0);
    let verdict = pb::CheckCommentResponse::decode(payload.as_slice())
        .unwrap()
        .verdict
        .unwrap();
    assert_eq!(verdict.decision(), pb::Decision::Rejected);
    let trailers = frames
        .iter()
        .find(|(flag, _)| flag & 0x80 != 0)
        .expect("a trailer frame");
    assert!(String::from_utf8_lossy(&trailers.1).contains("grpc-status:0"));
}

#[tokio::test]
async fn cross_origin_calls_are_allowed_only_for_configured_origins() {
    let preflight = [
        ("origin", "https://news.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type,x-grpc-web"),
    ];
    let path = "/comments.v1.CommentService/CheckComment";

    let closed = spawn_app().await;
    let response = http1(closed.addr, "OPTIONS", path, &preflight, b"").await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        None,
        "{}",
        response.head
    );

    let open = spawn_app_with(|config| {
        config.cors_allow_origins = vec!["https://news.example".to_owned()]
    })
    .await;
    let response = http1(open.addr, "OPTIONS", path, &preflight, b"").await;
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some("https://news.example"),
        "{}",
        response.head
    );
    let other = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let response = http1(open.addr, "OPTIONS", path, &other, b"").await;
    assert_eq!(response.header("access-control-allow-origin"), None);
}
