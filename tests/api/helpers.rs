//! Starting the real server (in-process or as the release binary) and small
//! request builders.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use commentd::{
    Application, Config,
    api::pb::{
        self, comment_service_client::CommentServiceClient,
        moderation_service_client::ModerationServiceClient,
    },
    config::LogFormat,
    telemetry,
};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

pub use crate::data_dir::wait_until_released;
use tonic::{
    Status, Streaming,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub type Client = CommentServiceClient<Channel>;
pub type Moderation = ModerationServiceClient<InterceptedService<Channel, Bearer>>;

/// Moderator tokens every test server accepts.
pub const ALICE_TOKEN: &str = "alice-token-0123456789";
pub const BOB_TOKEN: &str = "bob-token-0123456789";

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}").parse().expect("ascii header");
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// A running server with its data folder.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when the test turned it on.
    pub metrics_addr: Option<SocketAddr>,
    pub client: Client,
    pub data_dir: PathBuf,
    _temp: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Test defaults: no rate limits and no duplicate window unless a test
/// asks for them, so tests can submit freely.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::ephemeral(data_dir);
    config.rate.burst = 0;
    config.peer_rate.burst = 0;
    config.check_rate.burst = 0;
    config.duplicate_window = Duration::ZERO;
    config
}

/// For tests about volume and order rather than screening: generated texts
/// such as "writer 2 #18" trip rustrict's number-as-letter matching.
pub fn without_profanity_filter(config: &mut Config) {
    config.profanity.hold_at = None;
    config.profanity.reject_at = None;
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let temp = TempDir::new().expect("temp dir");
    let mut app = spawn_app_in(&temp.path().join("data"), configure).await;
    app._temp = Some(temp);
    app
}

/// Starts a server on an existing data folder (for restarts).
pub async fn spawn_app_in(data_dir: &Path, configure: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = telemetry::init(LogFormat::Text, None);
    }
    let mut config = test_config(data_dir);
    let tokens = data_dir.with_extension("tokens");
    std::fs::write(&tokens, format!("alice:{ALICE_TOKEN}\nbob:{BOB_TOKEN}\n"))
        .expect("tokens file");
    config.moderator_tokens_file = Some(tokens);
    configure(&mut config);
    wait_until_released(data_dir);
    let application = Application::build(config)
        .await
        .unwrap_or_else(|error| panic!("application builds: {error:#}"));
    let addr = application.local_addr();
    let metrics_addr = application.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(application.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = connect(addr).await;
    TestApp {
        addr,
        metrics_addr,
        client,
        data_dir: data_dir.to_owned(),
        _temp: None,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A plaintext HTTP/2 connection to the server.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects")
}

pub async fn connect(addr: SocketAddr) -> Client {
    CommentServiceClient::new(channel(addr).await)
}

/// A client whose HTTP/2 receive windows are the protocol minimum, so a
/// reader that stops reading pushes back on the server quickly.
pub async fn connect_with_small_windows(addr: SocketAddr) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connects");
    CommentServiceClient::new(channel)
}

impl TestApp {
    /// A moderation client with the given token (None: no header).
    pub async fn moderation(&self, token: Option<&str>) -> Moderation {
        ModerationServiceClient::with_interceptor(
            channel(self.addr).await,
            Bearer(token.map(str::to_owned)),
        )
    }

    /// A moderation client authenticated as "alice".
    pub async fn alice(&self) -> Moderation {
        self.moderation(Some(ALICE_TOKEN)).await
    }

    /// A new connection of its own (separate HTTP/2 flow control).
    pub async fn new_client(&self) -> Client {
        connect(self.addr).await
    }

    /// Graceful shutdown; returns the data folder's owner so it survives.
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
        self._temp.take()
    }
}

pub fn submission(article: &str, text: &str, client: &str) -> pb::SubmitCommentRequest {
    pb::SubmitCommentRequest {
        article_id: article.to_owned(),
        author_name: "Reader".to_owned(),
        text: text.to_owned(),
        client_id: client.to_owned(),
        ..Default::default()
    }
}

/// SubmitComment, expecting the call to succeed (whatever the verdict).
pub async fn submit(
    client: &mut Client,
    request: pb::SubmitCommentRequest,
) -> pb::SubmitCommentResponse {
    client
        .submit_comment(request)
        .await
        .expect("submit succeeds")
        .into_inner()
}

/// SubmitComment, expecting the call to fail; its status.
pub async fn submit_error(client: &mut Client, request: pb::SubmitCommentRequest) -> Status {
    client
        .submit_comment(request)
        .await
        .expect_err("submit fails")
}

/// Submits `submission(article, text, client_id)`; the whole response.
pub async fn submit_response(
    client: &mut Client,
    article: &str,
    text: &str,
    client_id: &str,
) -> pb::SubmitCommentResponse {
    submit(client, submission(article, text, client_id)).await
}

/// Submits `submission(article, text, client_id)`; the verdict on it.
pub async fn verdict_of(
    client: &mut Client,
    article: &str,
    text: &str,
    client_id: &str,
) -> pb::Verdict {
    submit_response(client, article, text, client_id)
        .await
        .verdict
        .expect("a verdict")
}

/// The dry-run verdict of CheckComment.
pub async fn check_verdict(client: &mut Client, text: &str, author_name: &str) -> pb::Verdict {
    client
        .check_comment(pb::CheckCommentRequest {
            text: text.to_owned(),
            author_name: author_name.to_owned(),
        })
        .await
        .expect("check succeeds")
        .into_inner()
        .verdict
        .expect("a verdict")
}

fn get_request(id: &str) -> pb::GetCommentRequest {
    pb::GetCommentRequest {
        comment_id: id.to_owned(),
    }
}

/// GetComment, expecting the comment.
pub async fn get_comment(client: &mut Client, id: &str) -> pb::Comment {
    client
        .get_comment(get_request(id))
        .await
        .expect("get succeeds")
        .into_inner()
        .comment
        .expect("a comment")
}

/// GetComment, expecting the call to fail; its status.
pub async fn get_comment_error(client: &mut Client, id: &str) -> Status {
    client
        .get_comment(get_request(id))
        .await
        .expect_err("get fails")
}

fn subscribe_request(article: &str, after: &str) -> pb::SubscribeCommentsRequest {
    pb::SubscribeCommentsRequest {
        article_id: article.to_owned(),
        after_comment_id: after.to_owned(),
    }
}

/// SubscribeComments for `article` after the cursor `after` ("" = live only).
pub async fn subscribe(
    client: &mut Client,
    article: &str,
    after: &str,
) -> Streaming<pb::SubscribeCommentsResponse> {
    client
        .subscribe_comments(subscribe_request(article, after))
        .await
        .expect("subscribe succeeds")
        .into_inner()
}

/// SubscribeComments, expecting the call to fail; its status.
pub async fn subscribe_error(client: &mut Client, article: &str, after: &str) -> Status {
    client
        .subscribe_comments(subscribe_request(article, after))
        .await
        .expect_err("subscribe fails")
}

/// Submits a clean comment and returns it (asserting approval).
pub async fn submit_approved(client: &mut Client, article: &str, text: &str) -> pb::Comment {
    let response = submit_response(client, article, text, "tester").await;
    assert_eq!(
        response.verdict.as_ref().unwrap().decision(),
        pb::Decision::Approved,
        "{text}: {response:?}"
    );
    response.comment.expect("approved comment is returned")
}

pub use crate::pages::list_all;

/// The release-style binary as a child process, for crash tests.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_commentd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the commentd binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server logs its address before exiting")
                .expect("stderr is readable");
            if let Some(addr) = line.split("commentd listening on ").nth(1) {
                break addr.trim().parse().expect("a socket address");
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
