//! Traces over OTLP (feature `otlp`): the binary, started with
//! `--otlp-endpoint`, sends the spans of a call to a small OTLP/gRPC
//! receiver of this test's own. Run with `cargo test --features otlp --test otlp`.
#![cfg(feature = "otlp")]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use bytes::Bytes;
use commentd::api::pb::{self, comment_service_client::CommentServiceClient};
use http_body_util::{BodyExt, StreamBody};
use hyper::{Request, Response, body::Frame, server::conn::http2, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpListener, sync::mpsc};

/// Accepts OTLP/gRPC `Export` calls, hands each request body to the
/// channel and answers an empty `ExportTraceServiceResponse`.
async fn otlp_receiver() -> (SocketAddr, mpsc::UnboundedReceiver<(String, Bytes)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let sender = sender.clone();
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let sender = sender.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    let body = request.into_body().collect().await?.to_bytes();
                    let _ = sender.send((path, body));
                    let mut trailers = hyper::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    let frames = vec![
                        Ok::<_, hyper::Error>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    Ok::<_, hyper::Error>(
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .body(StreamBody::new(tokio_stream::iter(frames)))
                            .expect("a valid response"),
                    )
                }
            });
            tokio::spawn(
                http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_s_spans_reach_an_otlp_receiver() {
    let (receiver, mut exports) = otlp_receiver().await;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_commentd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--otlp-endpoint", &format!("http://{receiver}")])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("the server starts").unwrap();
        if let Some(addr) = line.split("commentd listening on ").nth(1) {
            break addr.trim().parse().unwrap();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let mut client = CommentServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    client
        .submit_comment(pb::SubmitCommentRequest {
            article_id: "news/traced".to_owned(),
            author_name: "Ana".to_owned(),
            text: "A traced remark about the budget.".to_owned(),
            client_id: "c1".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    // SIGTERM: a clean stop flushes the spans still buffered.
    let status = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());

    let mut received = Vec::new();
    while let Ok(Some((path, body))) =
        tokio::time::timeout(Duration::from_secs(5), exports.recv()).await
    {
        assert_eq!(
            path,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        received.extend_from_slice(&body);
        let text = String::from_utf8_lossy(&received);
        if ["SubmitComment", "screening", "store.append", "rpc.method"]
            .iter()
            .all(|name| text.contains(name))
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&received);
    let log = log.join().unwrap().join("\n");
    for expected in [
        "commentd",
        "SubmitComment",
        "rpc",
        "screening",
        "store.append",
        "news/traced",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the exported spans ({} bytes); server log:\n{log}",
            received.len()
        );
    }
    // No comment text in the spans.
    assert!(
        !text.contains("A traced remark"),
        "the comment's text was exported"
    );
}
